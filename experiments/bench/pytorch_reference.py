"""PyTorch CPU figures for the same work as `cliplab bench` (random ViT-B/32, captions of 20 tokens).

    python3 experiments/bench/pytorch_reference.py
"""
import time

import torch
from transformers import CLIPConfig, CLIPModel

torch.manual_seed(0)
model = CLIPModel(CLIPConfig()).float()  # ViT-B/32 sizes, random weights


def inputs(images, choices=5, tokens=20):
    px = torch.randn(images, 3, 224, 224)
    ids = torch.randint(1, 49406, (images * choices, tokens))
    ids[:, 0] = 49406
    ids[:, -1] = 49407
    return px, ids


def own_logits(px, ids, choices=5):
    out = model(input_ids=ids, pixel_values=px)
    full = out.logits_per_image
    return torch.stack([full[i, i * choices:(i + 1) * choices] for i in range(px.shape[0])])


def timed(fn, iters=3):
    fn()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters


with torch.no_grad():
    px, ids = inputs(1)
    print(f"score 1x5: {timed(lambda: own_logits(px, ids)):.3f} s")
    px, ids = inputs(8)
    print(f"score throughput: {8 / timed(lambda: own_logits(px, ids)):.2f} images/s (batches of 8)")

opt = torch.optim.Adam(model.parameters(), lr=1e-5)
px, ids = inputs(2)
labels = torch.tensor([0, 1])
fwd = bwd = stp = 0.0
for i in range(4):
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
print(f"train step 2x5: {(fwd + bwd + stp) / 3:.3f} s (forward {fwd / 3:.3f}, backward {bwd / 3:.3f}, adam {stp / 3:.3f})")
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
