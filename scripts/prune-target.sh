#!/usr/bin/env bash
# Keeps a long-lived cargo target dir (the CI's, kept between runs so a warm run does not rebuild candle) from
# growing without bound: every change to a test file links a new ~400 MB test binary beside the old ones, and the
# old ones are never used again. Keeps the newest binary of each name, drops incremental caches (CI builds
# without them) and examples, which the tests rebuild on demand. Usage: prune-target.sh TARGET_DIR
set -euo pipefail
target="${1:?usage: prune-target.sh TARGET_DIR}"
for profile in "$target"/debug "$target"/release; do
  [ -d "$profile/deps" ] || continue
  rm -rf "$profile/incremental" "$profile/examples"
  # Executables in deps/ are named <name>-<16 hex digits>; sort by name, newest first, drop all but the first.
  find "$profile/deps" -maxdepth 1 -type f -perm -u+x -regextype posix-extended -regex '.*/[^./]+-[0-9a-f]{16}' -printf '%T@ %p\n' \
    | sort -rn \
    | awk '{ n = $2; sub(/-[0-9a-f]+$/, "", n); if (seen[n]++) print $2 }' \
    | xargs -r rm -f
  # Half-written outputs of a link that was killed (or ran out of disk).
  find "$profile/deps" -maxdepth 1 -type f -name '*.tmp[0-9]*' -delete
done
df -h "$target" | tail -1 | awk '{ print "target dir pruned: " $4 " free on " $6 }'
