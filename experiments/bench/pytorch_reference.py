"""PyTorch CPU figures for the same work as `cliplab bench` (random ViT-B/32, captions of N tokens).

    python3 experiments/bench/pytorch_reference.py [--tokens 20] [--iters 3] [--batch 8] [--json]

`scripts/bench.sh --with-pytorch` runs it alternately with `cliplab bench` and prints both side by side.
"""
import argparse
import json
import platform
import resource
import time

import torch
from transformers import CLIPConfig, CLIPModel

ap = argparse.ArgumentParser()
ap.add_argument("--tokens", type=int, default=20)
ap.add_argument("--iters", type=int, default=3)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--json", action="store_true")
args = ap.parse_args()

torch.manual_seed(0)
model = CLIPModel(CLIPConfig()).float()  # ViT-B/32 sizes, random weights


def inputs(images, choices=5, tokens=args.tokens):
    px = torch.randn(images, 3, 224, 224)
    ids = torch.randint(1, 49406, (images * choices, tokens))
    ids[:, 0] = 49406
    ids[:, -1] = 49407
    return px, ids


def own_logits(px, ids, choices=5):
    out = model(input_ids=ids, pixel_values=px)
    full = out.logits_per_image
    return torch.stack([full[i, i * choices:(i + 1) * choices] for i in range(px.shape[0])])


def timed(fn, iters=args.iters):
    fn()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters


with torch.no_grad():
    px, ids = inputs(1)
    score_1x5 = timed(lambda: own_logits(px, ids))
    px, ids = inputs(args.batch)
    throughput = args.batch / timed(lambda: own_logits(px, ids))

opt = torch.optim.Adam(model.parameters(), lr=1e-5)
px, ids = inputs(2)
labels = torch.tensor([0, 1])
fwd = bwd = stp = 0.0
for i in range(args.iters + 1):
    t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(own_logits(px, ids), labels)
    t1 = time.perf_counter()
    opt.zero_grad()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    if i:
        fwd += t1 - t0
        bwd += t2 - t1
        stp += t3 - t2
n = args.iters
report = {
    "score_1x5_s": score_1x5,
    "score_images_per_s": throughput,
    "train_forward_s": fwd / n,
    "train_backward_s": bwd / n,
    "train_optimizer_s": stp / n,
    "train_step_s": (fwd + bwd + stp) / n,
    "caption_tokens": args.tokens,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "machine": platform.machine(),
}
if args.json:
    print(json.dumps(report))
else:
    print(f"score 1x5: {score_1x5:.3f} s")
    print(f"score throughput: {throughput:.2f} images/s (batches of {args.batch})")
    print(f"train step 2x5, {args.tokens} tokens: {report['train_step_s']:.3f} s (forward {fwd / n:.3f}, "
          f"backward {bwd / n:.3f}, adam {stp / n:.3f})")
    print(f"peak memory {report['peak_rss_mib']:.0f} MiB; torch {torch.__version__}, threads {report['threads']}")
