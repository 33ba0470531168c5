#!/usr/bin/env bash
# CLIP Lab against PyTorch on this machine's CPU: the same work (random ViT-B/32: score 1 image x 5 captions,
# throughput in batches of 8, a training step of 2 images x 5 captions at 20 and at 77 tokens), run alternately
# (A B A B ...) and the best of each side kept, then one table with the ratios.
#
#   scripts/bench.sh [--with-pytorch] [--rounds N] [--iters N] [--tokens "20 77"]
#
# --with-pytorch installs PyTorch and transformers from PyPI (pinned below) into a throw-away virtual environment
# (deleted at the end; set CLIPLAB_BENCH_VENV=DIR to keep and reuse one). Never run by the tests.
# The CLIP Lab side is a release build of `cliplab` (the first build takes a while), or CLIPLAB_BENCH_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_PIN="torch==2.15.0"
TRANSFORMERS_PIN="transformers==5.24.0"
with_pytorch=0 rounds=2 iters=3 tokens="20 77"
while [ $# -gt 0 ]; do
  case "$1" in
    --with-pytorch) with_pytorch=1 ;;
    --rounds) rounds="$2"; shift ;;
    --iters) iters="$2"; shift ;;
    --tokens) tokens="$2"; shift ;;
    *) echo "usage: scripts/bench.sh [--with-pytorch] [--rounds N] [--iters N] [--tokens \"20 77\"]" >&2; exit 2 ;;
  esac
  shift
done

export PATH="$HOME/.cargo/bin:$PATH"
# OpenBLAS, which `cliplab` loads at run time for its matrix products (without it: the slower pure-Rust gemm).
if ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0'; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libopenblas0-pthread
fi
# CLIPLAB_BENCH_BIN=PATH times that `cliplab` instead (e.g. a dev build with the core at opt-level 3, as
# docs/performance.md's figures were taken), without building.
bin="${CLIPLAB_BENCH_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked -p cliplab
  bin="${CARGO_TARGET_DIR:-target}/release/cliplab"
fi

work=$(mktemp -d)
venv="${CLIPLAB_BENCH_VENV:-}"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
python=""
if [ "$with_pytorch" = 1 ]; then
  if [ -z "$venv" ]; then venv="$work/venv"; fi
  if ! "$venv/bin/python" -c 'import torch, transformers' >/dev/null 2>&1; then
    echo "bench: installing $TORCH_PIN $TRANSFORMERS_PIN into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$TORCH_PIN" "$TRANSFORMERS_PIN"
  fi
  python="$venv/bin/python"
elif [ -n "$venv" ] && [ -x "$venv/bin/python" ]; then
  python="$venv/bin/python"
fi

for t in $tokens; do
  for r in $(seq "$rounds"); do
    echo "bench: round $r, $t tokens: CLIP Lab" >&2
    "$bin" bench --json --iters "$iters" --tokens "$t" --device cpu >>"$work/ours-$t.jsonl"
    if [ -n "$python" ]; then
      echo "bench: round $r, $t tokens: PyTorch" >&2
      "$python" experiments/bench/pytorch_reference.py --json --iters "$iters" --tokens "$t" >>"$work/torch-$t.jsonl"
    fi
  done
done

python3 - "$work" $tokens <<'PY'
import json, os, sys
work, tokens = sys.argv[1], sys.argv[2:]
def load(name):
    # One JSON document per run, each on one line or pretty-printed over several (`cliplab bench --json`).
    p = os.path.join(work, name)
    if not os.path.exists(p):
        return []
    text, docs, i, dec = open(p).read(), [], 0, json.JSONDecoder()
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return docs
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)
rows = [("score 1 image x 5 captions (s)", "score_1x5_s", min),
        ("throughput, batches of 8 (images/s)", "score_images_per_s", max),
        ("training step 2 x 5 (s)", "train_step_s", min),
        ("  forward (s)", "train_forward_s", min),
        ("  backward (s)", "train_backward_s", min),
        ("  optimizer (s)", "train_optimizer_s", min),
        ("peak memory (MiB)", "peak_rss_mib", min)]
first = None
print("| tokens | measure | CLIP Lab | PyTorch | CLIP Lab / PyTorch |")
print("|---|---|---|---|---|")
for t in tokens:
    ours, theirs = load(f"ours-{t}.jsonl"), load(f"torch-{t}.jsonl")
    first = first or (ours[0] if ours else None)
    for label, key, best in rows:
        a = best(r[key] for r in ours if r.get(key) is not None) if ours else None
        b = best(r[key] for r in theirs if r.get(key) is not None) if theirs else None
        fmt = (lambda v: f"{v:.0f}") if key == "peak_rss_mib" else (lambda v: f"{v:.3f}")
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        print(f"| {t} | {label} | {fmt(a) if a is not None else '-'} | {fmt(b) if b is not None else '-'} | {ratio} |")
if first:
    m = first["machine"]
    torch = load(f"torch-{tokens[0]}.jsonl")
    tv = f"; PyTorch {torch[0]['torch']} ({torch[0]['threads']} threads)" if torch else ""
    print(f"\n{m['cpu']}, {m['threads']} threads; CLIP Lab {m['version']}, matrix products: {m['blas']}{tv}")
    print("Best of each side over the rounds; time ratios under 1 (throughput over 1) mean CLIP Lab is faster.")
PY
