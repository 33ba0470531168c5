#!/usr/bin/env bash
# Runs every test of CLIP Lab, installing what the tests need first (scripts/setup.sh: system packages,
# tauri-driver, the front end's npm packages and build). Works on a fresh Debian machine that has the Rust
# toolchain (rustup) and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# Every crate's unit, integration and end-to-end tests: tests/ drives the cliplab binary and, under Xvfb through
# WebDriver, the desktop app.
# One build serves the lints and the tests. Clippy's driver compiles the workspace's own crates (every target: lib,
# bins, tests, examples) and lints them as it goes, any warning an error, exactly what `cargo clippy --workspace
# --all-targets -- -D warnings` checks; the dependencies are compiled once, for the tests, instead of a second time
# in check mode for a separate `cargo clippy` (18 of the cold CI's minutes). CLIPPY_ARGS is how `cargo clippy` hands
# its `-- ARGS` to the driver (separated by __CLIPPY_HACKERY__); only workspace crates see the wrapper, so the
# dependencies' artifacts are the same as a plain `cargo build`'s.
clippy_driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [ -z "$clippy_driver" ]; then
  echo "test: clippy-driver not found (rustup component add clippy)" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# The end-to-end tests run target/<profile>/cliplab (and the GUI test cliplab-app): build every binary first, as
# `cargo test` alone may leave an older one. `--workspace`, not `-p cliplab`: the same feature set as the tests, so
# candle and Tauri are built once, not once per feature set (the monitor's crates add features to shared crates).
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
# The `cuda` feature compiles and lints clean (issue 11): candle's kernels built to PTX by the pinned CUDA 13.0
# toolchain (scripts/setup.sh installs it, scripts/cuda-env.sh points cargo at it), the core and the GPU parity
# example checked through clippy's driver (the wrapper above), not linked (no CUDA libraries here;
# scripts/gpu-build.sh links). Its own feature set: the normal build's artifacts stay as they are. In a subshell, so
# the CUDA variables stay out of the steps above.
( source scripts/cuda-env.sh &&
  cargo check -p experiments --features cuda --lib --example cuda_parity --locked )
