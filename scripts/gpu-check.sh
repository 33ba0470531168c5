nvidia-smi
# (nvidia-smi first: the driver's CUDA version decides which PTX loads; the kernels are built with CUDA 13.0.)
#
# The GPU check of the `cuda` build (issue 11), for a GPU machine with no network and no Rust: runs what
# scripts/gpu-build.sh built elsewhere (gpu-bin/: `cliplab` and the `cuda_parity` example, carried here) and
# prints one table:
#   - parity, tiny model and a random ViT-B/32: f32 probabilities CPU vs CUDA within 1e-4, logits, loss, every
#     gradient, the parameters after one AdamW step (fused CPU kernel vs the tensor path on the GPU); bf16 and f16
#     against the GPU's f32; training step time per precision (`cuda_parity`);
#   - `cliplab bench --device cuda` (and the CPU, for scale);
#   - the demo with `--device cuda`, then the same experiment with `train.precision = "bf16"`.
# The CUDA libraries come from this machine: its driver (libcuda), and cuBLAS, cuRAND, NVRTC and the runtime
# (CUDA 13) from PyTorch's nvidia wheels, /usr/local/cuda or LD_LIBRARY_PATH. Exits non-zero when a check fails.
#   bash scripts/gpu-check.sh            (from the repository root, gpu-bin/ beside scripts/)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d gpu-bin ] || { echo "gpu-check: no gpu-bin/ (build it with scripts/gpu-build.sh and carry it here)" >&2; exit 2; }
work="$(mktemp -d)"
for f in gpu-bin/*.xz; do xz -dc "$f" > "$work/$(basename "$f" .xz)"; chmod +x "$work/$(basename "$f" .xz)"; done
echo "gpu-check: binaries of commit $(cat gpu-bin/COMMIT 2>/dev/null || echo '?')"

# CUDA 13 libraries: PyTorch's nvidia wheels (nvidia/cu13/lib, nvidia/*/lib), then the toolkit's folders.
wheel_libs="$(python3 -c 'import glob, site; print(":".join(sorted({d for s in site.getsitepackages() for d in glob.glob(s + "/nvidia/*/lib")})))' 2>/dev/null || true)"
export LD_LIBRARY_PATH="${wheel_libs:+$wheel_libs:}/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
if ldd "$work/cliplab" | grep "not found"; then
  echo "gpu-check: libraries above missing (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)" >&2
  exit 2
fi

table="$work/table"
echo "check|value|limit|ok" > "$table"
failed=0
# parity ARGS...: the example's rows into the table, prefixed with the model.
parity() {
  if ! "$work/cuda_parity" "$@" | tee -a "$table"; then failed=1; fi
}
parity
parity --preset vit-b-32

home="$work/home"
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
for dev in cuda cpu; do
  if "$work/cliplab" --home "$home" bench --device "$dev" --iters 3 --json > "$work/bench-$dev.json"; then
    json '"|".join(["bench '"$dev"': score 1x5 (s) / images/s / train step (s)", "%.4f / %.1f / %.4f" % (d["score_1x5_s"], d["score_images_per_s"], d["train_step_s"]), "", ""])' \
      < "$work/bench-$dev.json" >> "$table"
    # The GPU the run recorded (Machine.gpu) and its memory in use after the bench.
    [ "$dev" = cuda ] && json '"|".join(["bench cuda: GPU / memory in use", "%s / %s MiB" % (d["machine"].get("gpu"), d.get("gpu_memory_mib")), "", ""])' \
      < "$work/bench-$dev.json" >> "$table"
  else
    echo "bench $dev|failed||FAIL" >> "$table"; failed=1
  fi
done

# The demo on the GPU, then its experiment again in bf16: a spec naming the demo's dataset and model with the
# demo's settings (experiments::run::demo::DemoOptions' defaults), so the two rows compare.
outcome='"%s|%s|%s|%s" % (label, "held-out accuracy %.3f -> %.3f" % (d["metrics"]["heldout_before"]["accuracy"], d["metrics"]["heldout_after"]["accuracy"]), "", "ok" if d["device"].startswith("cuda") else "FAIL")'
SECONDS=0
if "$work/cliplab" --home "$home" --device cuda demo --json > "$work/demo.json"; then
  label="demo --device cuda, f32 ($SECONDS s)" \
    python3 -c "import json, os; d = json.load(open('$work/demo.json')); label = os.environ['label']; print($outcome)" >> "$table"
  model="$(ls -d "$home"/demo/tiny-clip-* | head -n 1)"
  data="$(basename "$(ls -d "$home"/demo/data-* | head -n 1)")"
  cat > "$work/bf16.toml" <<TOML
name = "demo bf16"
dataset = "demo-${data#data-}"
model = "$model"
device = "cuda"
save_checkpoint = false
[sample]
train = 1600
heldout = 400
seed = 7
[train]
epochs = 5
batch_size = 16
lr = 2e-3
seed = 7
eval_batch_size = 64
precision = "bf16"
TOML
  SECONDS=0
  if "$work/cliplab" --home "$home" run --spec "$work/bf16.toml" --json > "$work/bf16.json"; then
    label="demo experiment, bf16 ($SECONDS s)" \
      python3 -c "import json, os; d = json.load(open('$work/bf16.json')); d = d[0] if isinstance(d, list) else d; label = os.environ['label']; print($outcome)" >> "$table"
  else
    echo "demo experiment, bf16|failed||FAIL" >> "$table"; failed=1
  fi
else
  echo "demo --device cuda|failed||FAIL" >> "$table"; failed=1
fi

echo
column -t -s '|' "$table"
grep -q '|FAIL$' "$table" && failed=1
exit "$failed"
