#!/usr/bin/env bash
# Runs every test of CLIP Lab, installing what the tests need first. Works on a fresh Debian machine that has
# the Rust toolchain (rustup) and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need (a C compiler and pkg-config for -sys crates).
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

# Every crate's unit, integration and end-to-end tests (tests/ drives the cliplab binary).
cargo test --workspace --locked "$@"
