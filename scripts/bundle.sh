#!/usr/bin/env bash
# Builds the Debian package of CLIP Lab (release) with both faces, the desktop app `cliplab-app` and the `cliplab`
# CLI, and checks its file list. Usage: scripts/bundle.sh [--debug] [--check-only]
#   --debug       the dev profile (what the tests already built: minutes instead of a release build's half hour on
#                 2 cores); the package is the same but for the binaries' optimisation;
#   --check-only  check the last .deb without building.
#
# The CLI is another workspace package, so the Tauri bundler does not build it: it is built here first and staged
# at src-tauri/target/cli/cliplab, where `bundle.linux.deb.files` in src-tauri/tauri.conf.json maps it to
# /usr/bin/cliplab.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release; cargo_profile=(--release); tauri_profile=(); check_only=0
for arg in "$@"; do
  case "$arg" in
    --debug) profile=debug; cargo_profile=(); tauri_profile=(--debug) ;;
    --check-only) check_only=1 ;;
    *) echo "bundle: unknown option $arg" >&2; exit 2 ;;
  esac
done
target_dir=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
deb_dir="$target_dir/$profile/bundle/deb"

if [ "$check_only" -eq 0 ]; then
  [ -x ui/node_modules/.bin/tauri ] || npm ci --prefix ui --no-audit --no-fund
  cargo build "${cargo_profile[@]}" --locked -p cliplab --bin cliplab
  mkdir -p src-tauri/target/cli
  cp "$target_dir/$profile/cliplab" src-tauri/target/cli/cliplab
  rm -f "$deb_dir"/*.deb
  # `tauri build` runs `npm run build` in ui/ first (beforeBuildCommand), then cargo, then the bundler.
  (cd src-tauri && ../ui/node_modules/.bin/tauri build "${tauri_profile[@]}" --bundles deb -- --locked)
fi

shopt -s nullglob
debs=("$deb_dir"/*.deb)
[ ${#debs[@]} -eq 1 ] || { echo "bundle: expected one .deb in $deb_dir, found ${#debs[@]}" >&2; exit 1; }
deb=${debs[0]}
# dpkg-deb lists `usr/bin/x` or `./usr/bin/x` depending on who built the archive: make both `/usr/bin/x`.
files=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./||; s|^|/|')
id=$(sed -n 's/^ *"identifier": *"\([^"]*\)".*/\1/p' src-tauri/tauri.conf.json)
missing=0
for want in /usr/bin/cliplab /usr/bin/cliplab-app "/usr/share/applications/$id.desktop" \
            /usr/share/icons/hicolor/32x32/apps/cliplab-app.png /usr/share/icons/hicolor/128x128/apps/cliplab-app.png \
            /usr/share/icons/hicolor/256x256@2/apps/cliplab-app.png /usr/share/icons/hicolor/512x512/apps/cliplab-app.png; do
  grep -qxF "$want" <<<"$files" || { echo "bundle: $deb lacks $want" >&2; missing=1; }
done
# One desktop entry, named by the reverse-DNS id (not after the product's display name).
desktop=$(grep -c '^/usr/share/applications/.*\.desktop$' <<<"$files" || true)
[ "$desktop" -eq 1 ] || { echo "bundle: $desktop desktop entries in $deb" >&2; missing=1; }
[ "$missing" -eq 0 ] || exit 1
dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards "*usr/share/applications/$id.desktop" | grep -qx 'Name=CLIP Lab' \
  || { echo "bundle: the desktop entry is not named CLIP Lab" >&2; exit 1; }
echo "bundle: $deb has usr/bin/cliplab, usr/bin/cliplab-app, usr/share/applications/$id.desktop and the icons"
