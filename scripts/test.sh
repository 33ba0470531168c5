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
# The `cuda` feature compiles and lints clean (issue 11): candle's kernels built to PTX by the pinned CUDA 13.0
# toolchain (scripts/setup.sh installs it, scripts/cuda-env.sh points cargo at it), the core and the GPU parity
# example checked, not linked (no CUDA libraries here; scripts/gpu-build.sh links). Its own feature set: the
# normal build's artifacts stay as they are. In a subshell, so the CUDA variables stay out of the steps below.
( source scripts/cuda-env.sh &&
  cargo clippy -p experiments --features cuda --lib --example cuda_parity --locked -- -D warnings )
# The end-to-end tests run target/<profile>/cliplab (and the GUI test cliplab-app): build every binary first, as
# `cargo test` alone may leave an older one. `--workspace`, not `-p cliplab`: the same feature set as the tests, so
# candle and Tauri are built once, not once per feature set (the monitor's crates add features to shared crates).
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
