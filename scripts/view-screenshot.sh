#!/usr/bin/env bash
# Makes docs/view.png: the native monitor (`cliplab view`) over a fresh demo home with two runs compared, drawn
# under Xvfb by Mesa's software OpenGL (no GPU, no screen). The window saves the PNG itself (`--screenshot`).
# Needs: xvfb-run (Debian: xvfb) and Mesa (libgl1-mesa-dri). Extra cargo flags: CARGO_FLAGS="...".
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/view.png}
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
# shellcheck disable=SC2086 # CARGO_FLAGS is a list of flags
# --workspace: the feature set the tests build with, so nothing is rebuilt for this script.
cargo build --quiet ${CARGO_FLAGS:-} --workspace --bins
bin=${CARGO_TARGET_DIR:-target}/debug
# Two demo runs on the same generated data, 3 and 5 epochs: their curves, metrics and the differing epochs.
"$bin/cliplab" --home "$home" demo --images 600 --epochs 3 --json >/dev/null
"$bin/cliplab" --home "$home" demo --images 600 --epochs 5 --json >/dev/null
LIBGL_ALWAYS_SOFTWARE=1 xvfb-run -a -s "-screen 0 1280x820x24" \
    "$bin/cliplab-view" --home "$home" --screenshot "$out" 2 1
echo "wrote $out"
