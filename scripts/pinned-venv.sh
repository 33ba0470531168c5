# Source me: defines pinned_venv, the one install-once logic of the virtual environments the scripts keep in
# ~/.cache (MLflow, object-store servers, the CUDA toolchain in scripts/setup.sh; the CUDA link libraries in
# scripts/gpu-build.sh). Uses $SUDO (empty as root) to install python3 where it is missing.
SUDO="${SUDO-}"; [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ] && SUDO="sudo"

# pinned_venv DIR REQUIREMENTS LABEL PYTHON-CHECK: a virtual environment of its own at DIR with REQUIREMENTS'
# pinned packages, (re)installed only when PYTHON-CHECK (which exits 0 when the pins are there) fails.
pinned_venv() {
  local dir="$1" reqs="$2" label="$3" check="$4"
  if ! "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "setup: installing $label into $dir" >&2
    command -v python3 >/dev/null 2>&1 || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq python3 python3-venv; }
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$reqs"
  fi
}
