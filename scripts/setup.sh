#!/usr/bin/env bash
# Installs what building and testing CLIP Lab needs on a Debian machine that has the Rust toolchain (rustup),
# then builds the desktop app's web front end (ui/dist, which the app embeds). Safe to run again: it only
# installs what is missing. Sourced by scripts/test.sh and scripts/app.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# C toolchain for -sys crates (nasm: libjpeg-turbo's SIMD code in mozjpeg-sys); WebKitGTK and friends for Tauri;
# the WebDriver, Xvfb and a font for the GUI tests.
pkgs=(build-essential pkg-config nasm libwebkit2gtk-4.1-dev librsvg2-dev libxdo-dev libssl-dev
      webkit2gtk-driver xvfb xauth fonts-dejavu-core)
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
  cargo install tauri-driver --locked --version 2.1.0
fi

# The web front end: exact versions from ui/package-lock.json, built into ui/dist.
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  npm ci --prefix ui --no-audit --no-fund
fi
npm run --prefix ui build
