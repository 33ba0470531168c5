#!/usr/bin/env bash
# Builds, on a machine without a GPU, what scripts/gpu-check.sh runs on a GPU machine that has no network:
# `cliplab` and the `cuda_parity` example with `--features cuda`, stripped and compressed into gpu-bin/ (ignored
# by git; carry it there, e.g. the device tool's `carry: ["gpu-bin"]`).
#
# Linking needs the CUDA libraries candle links against: cuBLAS, cuBLASLt, cuRAND and NVRTC from PyPI (pinned in
# scripts/cuda-link-requirements.txt, a virtual environment of their own, ~1 GB), the runtime from the toolchain
# (scripts/cuda-requirements.txt), and the driver's libcuda, which no package ships without a driver: a stub is
# made here, every `cu*` function cudarc declares, under the driver's SONAME (libcuda.so.1). At run time the GPU
# machine's own driver and libraries are loaded (gpu-check.sh finds them). CUDA_COMPUTE_CAP (default 90: H100,
# H200) picks the GPU the kernels are compiled for. Arguments are passed to cargo (e.g. `--config ...`; the dev
# profile, whose dependencies are optimised, is what is packed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda-env.sh
source scripts/pinned-venv.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

LINK_VENV="${CLIPLAB_CUDA_LINK_VENV:-$HOME/.cache/cliplab-cuda-link-venv}"
pinned_venv "$LINK_VENV" scripts/cuda-link-requirements.txt "the CUDA 13.0 link libraries (cuBLAS, cuRAND, NVRTC)" \
  'import importlib.metadata as m, sys; pins = [l.split("==") for l in open("scripts/cuda-link-requirements.txt").read().split() if "==" in l]; sys.exit(any(m.version(n) != v for n, v in pins))'

# The linker's view: unversioned names (what `-lcublas` looks for) pointing at the wheels' versioned files.
link_dir="$CARGO_TARGET_DIR/cuda-link"
mkdir -p "$link_dir"
site="$(ls -d "$LINK_VENV"/lib/python3*/site-packages/nvidia/cu13/lib | head -n 1)"
for lib in cublas cublasLt curand nvrtc; do
  file="$(ls "$site"/lib$lib.so.* | grep -E "lib$lib\.so\.[0-9]+$" | head -n 1)"
  ln -sf "$file" "$link_dir/lib$lib.so"
done
ln -sf "$CUDA_HOME/lib/libcudart.so.13" "$link_dir/libcudart.so"

# The driver stub: every function cudarc (the version in Cargo.lock) declares, as an empty function.
cudarc_version="$(grep -A1 '^name = "cudarc"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
cudarc_src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$cudarc_version" | head -n 1)"
grep -o 'pub unsafe fn cu[A-Za-z0-9_]*' "$cudarc_src/src/driver/sys/mod.rs" | sed 's/pub unsafe fn //' | sort -u \
  | sed 's/.*/void &(void) {}/' > "$link_dir/libcuda-stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link_dir/libcuda.so" "$link_dir/libcuda-stub.c"

# LIBRARY_PATH (read by the C compiler that links) rather than RUSTFLAGS, which would rebuild every crate.
export LIBRARY_PATH="$link_dir${LIBRARY_PATH:+:$LIBRARY_PATH}"
cargo build -p cliplab -p experiments --features cliplab/cuda,experiments/cuda --bin cliplab --example cuda_parity \
  --locked "$@"

out=gpu-bin
rm -rf "$out" && mkdir -p "$out"
for bin in "$CARGO_TARGET_DIR/debug/cliplab" "$CARGO_TARGET_DIR/debug/examples/cuda_parity"; do
  strip -o "$out/$(basename "$bin")" "$bin"
  xz -T0 -6 "$out/$(basename "$bin")"
done
git rev-parse HEAD > "$out/COMMIT"
ls -la "$out"
echo "gpu-build: carry $out/ to the GPU machine and run scripts/gpu-check.sh there"
