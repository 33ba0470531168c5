#!/usr/bin/env bash
# Builds and starts the CLIP Lab desktop app (release build), installing what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo run --release --locked -p cliplab-app "$@"
