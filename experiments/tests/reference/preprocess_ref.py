#!/usr/bin/env python3
"""Reference outputs for `experiments/tests/preprocess.rs`.

Builds deterministic test images with integer formulas (mirrored exactly in the Rust test), runs them through
Hugging Face transformers' slow/PIL `CLIPImageProcessor` and writes `preprocess_ref.json` next to this file:

- the image after the processor's RGB conversion (FNV-1a hash and strided samples),
- the image right after PIL's resize, captured from inside the processor call (its FNV-1a hash, and the whole
  uint8 array for the cases in FULL, strided samples otherwise), so the Rust resampler can be checked bit-exactly,
- the final `pixel_values` (FNV-1a hash over the little-endian float32 bytes, sum, sum of squares, and the whole
  array for the cases in FULL, strided samples otherwise),
- the processor's own `to_dict()`, which the Rust test parses as a preprocessor_config.json,
- RGB conversions of 16-bit PNGs as PIL opens them.

Run from anywhere:  python3 experiments/tests/reference/preprocess_ref.py
Needs: pip install pillow numpy transformers   (no torch / torchvision needed)
"""

import json
import os
import struct
import zlib

import numpy as np
from refhash import fnv1a64
import PIL
from PIL import Image
import transformers
import transformers.image_transforms as image_transforms

try:  # transformers >= 5: the PIL backend has its own class (CLIPImageProcessor may pick torchvision)
    from transformers import CLIPImageProcessorPil as SlowProcessor
except ImportError:  # transformers 4.x: CLIPImageProcessor is the slow PIL one
    from transformers import CLIPImageProcessor as SlowProcessor

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "preprocess_ref.json")

SAMPLES = 61  # strided samples stored when a whole array is not
# Cases whose whole resized image and whole output are stored (the others store hashes and samples, which keeps
# the JSON small; the hashes still check every value bit-exactly).
FULL = {"rgb61x47_s24", "rgba40x90_s24", "gray33x33_s24", "rgb15x10_pad", "rgb15x10_crop_pad"}


# ----------------------------------------------------------------------------------------------------------------
# Deterministic test images. KEEP IN SYNC with `experiments/tests/preprocess.rs` (same names, same formulas).


def px_rgb(x, y, c):
    base = (x * 7 + y * 13 + c * 50) % 256
    return 255 - base if (x // 4 + y // 3 + c) % 2 == 0 else base


def px_alpha(x, y):
    if y < 10:
        return 0
    if y >= 80:
        return 255
    return (x * 5 + y * 3) % 256


def px_gray(x, y):
    return (x * x + y * 5 + ((x * y) % 7) * 20) % 256


def px_gray16(x, y):
    if (x + y) % 3 == 0:
        return (x * 13 + y * 7) % 256
    return (x * 997 + y * 1999) % 65536


def px_rgb16(x, y, c):
    return (x * 1201 + y * 2503 + c * 7001) % 65536


def px_alpha16(x, y):
    return (x * 3001 + y * 4999) % 65536


def make_rgb(w, h):
    return np.array([[[px_rgb(x, y, c) for c in range(3)] for x in range(w)] for y in range(h)], dtype=np.uint8)


def make_rgba(w, h):
    return np.array(
        [[[px_rgb(x, y, c) for c in range(3)] + [px_alpha(x, y)] for x in range(w)] for y in range(h)],
        dtype=np.uint8,
    )


def make_gray(w, h):
    return np.array([[px_gray(x, y) for x in range(w)] for y in range(h)], dtype=np.uint8)


IMAGES = {
    "rgb61x47": lambda: Image.fromarray(make_rgb(61, 47)),
    "rgba40x90": lambda: Image.fromarray(make_rgba(40, 90)),
    "gray33x33": lambda: Image.fromarray(make_gray(33, 33)),
    "rgb15x10": lambda: Image.fromarray(make_rgb(15, 10)),
    "rgb300x250": lambda: Image.fromarray(make_rgb(300, 250)),
    "rgb250x300": lambda: Image.fromarray(make_rgb(250, 300)),
    "rgb30x100": lambda: Image.fromarray(make_rgb(30, 100)),
}

S24 = {"size": {"shortest_edge": 24}, "crop_size": {"height": 24, "width": 24}}

# (case name, image name, processor kwargs, alpha handling)
#   alpha "composite": the image is given to the processor as it is (transformers composites alpha onto white)
#   alpha "drop": the image is given as `img.convert("RGB")` (alpha dropped, the transformers 4.x behaviour)
CASES = [
    ("rgb61x47_s24", "rgb61x47", S24, "composite"),
    ("rgba40x90_s24", "rgba40x90", S24, "composite"),
    ("rgba40x90_s24_drop", "rgba40x90", S24, "drop"),
    ("gray33x33_s24", "gray33x33", S24, "composite"),
    ("gray33x33_up50", "gray33x33", {"size": 50, "crop_size": 50}, "composite"),
    ("rgb15x10_up37", "rgb15x10", {"size": {"shortest_edge": 37}, "crop_size": {"height": 30, "width": 40}}, "composite"),
    ("rgb15x10_pad", "rgb15x10", {"size": {"shortest_edge": 12}, "crop_size": {"height": 24, "width": 20}}, "composite"),
    ("rgb15x10_crop_pad", "rgb15x10", {"size": {"shortest_edge": 12}, "crop_size": {"height": 8, "width": 30}}, "composite"),
    ("rgb15x10_noresize_pad", "rgb15x10", {"do_resize": False, "crop_size": {"height": 13, "width": 12}}, "composite"),
    ("rgb300x250_default", "rgb300x250", {}, "composite"),
    ("rgb300x250_nocrop", "rgb300x250", {"do_center_crop": False}, "composite"),
    ("rgb250x300_exact", "rgb250x300", {"size": {"height": 40, "width": 30}, "do_center_crop": False}, "composite"),
    # Pillow >= 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as the
    # width (rgba40x90 above too); these exercise that order.
    ("rgb30x100_s24_vertical_first", "rgb30x100", S24, "composite"),
    ("rgb61x47_exact_wider_vertical_first", "rgb61x47", {"size": {"height": 20, "width": 70}, "do_center_crop": False}, "composite"),
    ("rgb61x47_nearest", "rgb61x47", dict(S24, resample=0), "composite"),
    ("rgb61x47_lanczos", "rgb61x47", dict(S24, resample=1), "composite"),
    ("rgb61x47_bilinear", "rgb61x47", dict(S24, resample=2), "composite"),
    ("rgb61x47_box", "rgb61x47", dict(S24, resample=4), "composite"),
    ("rgb61x47_hamming", "rgb61x47", dict(S24, resample=5), "composite"),
    ("rgb15x10_nearest_up37", "rgb15x10", {"size": 37, "crop_size": 30, "resample": 0}, "composite"),
    ("rgb61x47_raw", "rgb61x47", dict(S24, do_rescale=False, do_normalize=False), "composite"),
    ("rgb61x47_norm_only", "rgb61x47", dict(S24, do_rescale=False), "composite"),
    ("rgb61x47_rescale_only", "rgb61x47", dict(S24, do_normalize=False, rescale_factor=0.5), "composite"),
    (
        "rgb61x47_custom_mean",
        "rgb61x47",
        dict(S24, image_mean=[0.5, 0.25, 0.125], image_std=[0.3, 0.2, 0.1]),
        "composite",
    ),
]


# ----------------------------------------------------------------------------------------------------------------


def u8_entry(arr, full):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    flat = arr.reshape(-1)
    e = {"shape": list(arr.shape), "fnv1a64": fnv1a64(arr.tobytes())}
    if full:
        e["data"] = flat.tolist()
    else:
        stride = max(1, flat.size // SAMPLES)
        e["samples"] = [[i, int(flat[i])] for i in range(0, flat.size, stride)]
    return e


def f32_entry(arr, full):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    flat = arr.reshape(-1)
    e = {
        "shape": list(arr.shape),
        "fnv1a64": fnv1a64(flat.astype("<f4").tobytes()),
        "sum": float(flat.astype(np.float64).sum()),
        "sum_sq": float((flat.astype(np.float64) ** 2).sum()),
    }
    if full:
        e["data"] = [float(str(v)) for v in flat]  # shortest decimal that round-trips the float32
    else:
        stride = max(1, flat.size // SAMPLES)
        e["samples"] = [[i, float(str(flat[i]))] for i in range(0, flat.size, stride)]
    return e


def to_rgb_array(img):
    """The processor's own RGB conversion (HWC uint8)."""
    try:
        return np.asarray(image_transforms.convert_to_rgb(img, return_numpy=True))
    except TypeError:  # transformers 4.x
        return np.asarray(image_transforms.convert_to_rgb(img))


def run_case(name, image_name, kwargs, alpha):
    img = IMAGES[image_name]()
    if alpha == "drop":
        img = img.convert("RGB")
    proc = SlowProcessor(**kwargs)

    captured = []
    orig_resize = Image.Image.resize

    def recording_resize(self, *args, **kw):
        out = orig_resize(self, *args, **kw)
        captured.append(np.array(out))
        return out

    Image.Image.resize = recording_resize
    try:
        pixel_values = proc(images=img, return_tensors="np")["pixel_values"][0]
    finally:
        Image.Image.resize = orig_resize

    assert len(captured) == (1 if proc.do_resize else 0), (name, len(captured))
    case = {
        "name": name,
        "image": image_name,
        "alpha": alpha,
        "kwargs": kwargs,
        "to_dict": json.loads(proc.to_json_string()),
        "converted": u8_entry(to_rgb_array(img), False),
        "output": f32_entry(pixel_values, name in FULL),
    }
    if captured:
        resized = captured[0]
        if resized.ndim == 2:
            resized = resized[:, :, None]
        case["resized"] = u8_entry(resized, name in FULL)
    return case


def png_bytes(arr16, color_type):
    """A 16-bit PNG written by hand (PIL cannot write 16-bit RGB), big-endian samples, no filtering."""
    h, w = arr16.shape[:2]
    raw = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png16_cases():
    import io

    specs = [
        ("gray16_20x17", 20, 17, 0, lambda x, y: [px_gray16(x, y)]),
        ("gray_alpha16_9x5", 9, 5, 4, lambda x, y: [px_gray16(x, y), px_alpha16(x, y)]),
        ("rgb16_19x13", 19, 13, 2, lambda x, y: [px_rgb16(x, y, c) for c in range(3)]),
        ("rgba16_11x7", 11, 7, 6, lambda x, y: [px_rgb16(x, y, c) for c in range(3)] + [px_alpha16(x, y)]),
    ]
    out = []
    for name, w, h, ct, f in specs:
        arr = np.array([[f(x, y) for x in range(w)] for y in range(h)], dtype=np.uint16)
        img = Image.open(io.BytesIO(png_bytes(arr, ct)))
        img.load()
        out.append({"name": name, "pil_mode": img.mode, "converted": u8_entry(to_rgb_array(img), True)})
    return out


def main():
    ref = {
        "generator": "experiments/tests/reference/preprocess_ref.py",
        "versions": {
            "transformers": transformers.__version__,
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "processor_class": SlowProcessor.__name__,
        },
        "default_to_dict": json.loads(SlowProcessor().to_json_string()),
        "cases": [run_case(*c) for c in CASES],
        "png16": png16_cases(),
    }
    with open(OUT, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
