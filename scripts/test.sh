#!/usr/bin/env bash
# Runs every test of CLIP Lab, installing what the tests need first (scripts/setup.sh: system packages,
# tauri-driver, the front end's npm packages and build). Works on a fresh Debian machine that has the Rust
# toolchain (rustup) and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# Every crate's unit, integration and end-to-end tests: tests/ drives the cliplab binary and, under Xvfb through
# WebDriver, the desktop app.
# Lints first (fast, and a warning fails the run), then the tests.
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests run target/<profile>/cliplab: build it first, as `cargo test` alone may leave an older one.
cargo build -p cliplab --locked
cargo test --workspace --locked "$@"
