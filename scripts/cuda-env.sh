# Source me: points a `--features cuda` build at the pinned CUDA 13.0 toolchain scripts/setup.sh installs from PyPI
# (scripts/cuda-requirements.txt) into ~/.cache/cliplab-cuda-venv (CLIPLAB_CUDA_VENV overrides).
#   source scripts/cuda-env.sh && cargo check -p experiments --features cuda --lib
# candle-kernels' build finds nvcc through NVCC/PATH/CUDA_HOME and compiles PTX for CUDA_COMPUTE_CAP (without it, it
# asks nvidia-smi, which a machine without a GPU lacks): 90 (H100/H200) unless set before sourcing. cudarc reads the
# toolkit's version from `nvcc --version`; CUDARC_CUDA_VERSION pins it to the same 13.0 all the same.
# Returns non-zero, changing nothing, when the toolchain is not installed.
cliplab_cuda_venv="${CLIPLAB_CUDA_VENV:-$HOME/.cache/cliplab-cuda-venv}"
cliplab_cuda_home="$(ls -d "$cliplab_cuda_venv"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -n 1)"
if [ -z "$cliplab_cuda_home" ] || [ ! -x "$cliplab_cuda_home/bin/nvcc" ]; then
  echo "cuda-env: no CUDA toolchain in $cliplab_cuda_venv (scripts/setup.sh installs it)" >&2
  unset cliplab_cuda_venv cliplab_cuda_home
  return 1 2>/dev/null || exit 1
fi
export CUDA_HOME="$cliplab_cuda_home"
export NVCC="$CUDA_HOME/bin/nvcc"
export PATH="$CUDA_HOME/bin:$PATH"
# No CPATH / C_INCLUDE_PATH: nvcc finds its headers beside itself, and the C crates' build scripts (cc) rerun when
# those change, which would rebuild mozjpeg-sys and libsqlite3-sys for the normal build after every cuda build.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
# candle-kernels compiles its .cu files in parallel on half the cores by default (one on a 2-core CI machine).
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
unset cliplab_cuda_venv cliplab_cuda_home
