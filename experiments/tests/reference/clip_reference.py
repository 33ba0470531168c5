"""Reference values for tests/engine.rs::matches_pytorch_reference, computed once with PyTorch + transformers.

Loads the tiny random CLIP in tests/reference/tiny_clip (written by CLIP Lab itself, so this also checks that
`transformers.CLIPModel.from_pretrained` reads CLIP Lab's export), feeds it fixed inputs and records:
per-image logits over each image's own 5 choices, the cross-entropy loss, the gradients of a few tensors
(layer norms, class embedding, logit_scale: the ones candle's own CLIP fails to train), and the loss and a few
parameter values after one torch.optim.Adam step (lr 1e-3).

    pip install torch transformers safetensors numpy
    python3 experiments/tests/reference/clip_reference.py   # writes clip_reference.json beside it

Produced with torch 2.15.0, transformers 5.24.0 (CPU, float32).
"""
import json
import math
import os

import numpy as np
import torch
from transformers import CLIPModel

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
model = CLIPModel.from_pretrained(os.path.join(HERE, "tiny_clip"), attn_implementation="eager").float()
model.train()  # no dropout in CLIP; train() only for clarity
cfg = model.config.text_config
V, BOS, EOS = cfg.vocab_size, cfg.bos_token_id, cfg.eos_token_id

B, K = 2, 5
# Pixels: a smooth deterministic pattern, computed in float64 then cast.
b, c, y, x = np.meshgrid(np.arange(B), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
pixels = np.sin(0.1 * (x + 2 * y) + c + 3 * b).astype(np.float32)
# Captions of different lengths, padded with 0 after the end-of-text token.
rows = []
for r in range(B * K):
    n = 1 + (r * 3) % 7
    rows.append([BOS] + [(r * 7 + j * 13) % (V - 3) + 1 for j in range(n)] + [EOS])
S = max(map(len, rows))
ids = np.array([row + [0] * (S - len(row)) for row in rows], dtype=np.int64)
mask = np.array([[1] * len(row) + [0] * (S - len(row)) for row in rows], dtype=np.int64)
labels = [1, 3]


def own_logits():
    out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), pixel_values=torch.tensor(pixels))
    full = out.logits_per_image  # [B, B*K]
    return torch.stack([full[i, i * K:(i + 1) * K] for i in range(B)])


logits = own_logits()
loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
loss.backward()
params = dict(model.named_parameters())
watched = [
    "logit_scale",
    "vision_model.embeddings.class_embedding",
    "vision_model.pre_layrnorm.weight",
    "vision_model.encoder.layers.0.layer_norm1.weight",
    "vision_model.encoder.layers.0.self_attn.q_proj.weight",
    "vision_model.embeddings.patch_embedding.weight",
    "text_model.encoder.layers.0.layer_norm2.bias",
    "text_model.embeddings.token_embedding.weight",
    "text_model.final_layer_norm.weight",
    "visual_projection.weight",
]
grads = {n: {"norm": float(params[n].grad.norm()), "first": params[n].grad.flatten()[:4].tolist()} for n in watched}
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
opt.step()
with torch.no_grad():
    loss_after = float(torch.nn.functional.cross_entropy(own_logits(), torch.tensor(labels)))
after = {n: params[n].detach().flatten()[:4].tolist() for n in watched}
json.dump(
    {
        "pixels": pixels.flatten().tolist(),
        "ids": ids.tolist(),
        "labels": labels,
        "logits": logits.detach().tolist(),
        "loss": float(loss),
        "grads": grads,
        "loss_after_adam_step": loss_after,
        "params_after_adam_step": after,
    },
    open(os.path.join(HERE, "clip_reference.json"), "w"),
)
print("loss", float(loss), "->", loss_after)
