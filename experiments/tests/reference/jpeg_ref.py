#!/usr/bin/env python3
"""Reference JPEG decodes for `experiments/tests/jpeg.rs`.

Encodes small deterministic images as JPEG with Pillow (baseline and progressive; 4:4:4, 4:2:2 and 4:2:0 chroma;
grayscale; CMYK; noisy and smooth content) into `jpeg/<case>.jpg`, decodes each file again with Pillow
(`Image.open(...).convert("RGB")`, which is what transformers' CLIPImageProcessor does) and stores that decode
losslessly as `jpeg/<case>.png`. `jpeg_ref.json` lists the cases with Pillow's mode after `Image.open`, the size,
an FNV-1a hash of the RGB bytes and the Pillow / libjpeg-turbo versions. It also checks that Pillow refuses each
JPEG cut at half of its scan data ("image file is truncated") and records the message, and what Pillow does with a
JPEG without its end-of-image marker, with junk after it, and with stray bytes before it.

The Rust test decodes every `.jpg` with `experiments::model::preprocess::decode_image` and compares it with the
`.png` bit for bit.

Run from anywhere:  python3 experiments/tests/reference/jpeg_ref.py
Needs: pip install pillow numpy
"""

import io
import json
import os

import numpy as np
from refhash import fnv1a64
import PIL
from PIL import Image, ImageFile, features

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.path.join(HERE, "jpeg")
OUT = os.path.join(HERE, "jpeg_ref.json")

# Odd sizes, not multiples of the 8/16-pixel MCU, so partial blocks and edge upsampling are exercised.
W, H = 45, 37


def noisy(channels):
    """Pseudo-random pixels (an integer hash of x, y, c): the worst case for chroma subsampling."""
    y, x = np.mgrid[0:H, 0:W].astype(np.uint64)
    planes = []
    for c in range(channels):
        v = (x * 2654435761 + y * 40503 + (c + 1) * 97 + (x * y) * 2246822519) & 0xFFFFFFFF
        v = (v ^ (v >> 13)) * 1274126177 & 0xFFFFFFFF
        planes.append(((v >> 16) & 0xFF).astype(np.uint8))
    return np.stack(planes, axis=-1)


def smooth(channels):
    """Gradients and a soft disc, like a drawing: the common case."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    d = np.sqrt((x - 20.0) ** 2 + (y - 17.0) ** 2)
    disc = np.clip(200.0 - 12.0 * np.maximum(d - 9.0, 0.0), 0.0, 200.0)
    planes = [x * 255.0 / (W - 1), y * 255.0 / (H - 1), disc, (x + y) * 255.0 / (W + H - 2)]
    return np.stack([np.round(p).astype(np.uint8) for p in planes[:channels]], axis=-1)


# name -> (content, Pillow mode, save options)
CASES = {
    "noisy_444_baseline": ("noisy", "RGB", {"subsampling": 0}),
    "noisy_422_baseline": ("noisy", "RGB", {"subsampling": 1}),
    "noisy_420_baseline": ("noisy", "RGB", {"subsampling": 2}),
    "noisy_444_progressive": ("noisy", "RGB", {"subsampling": 0, "progressive": True}),
    "noisy_420_progressive": ("noisy", "RGB", {"subsampling": 2, "progressive": True}),
    "smooth_420_baseline": ("smooth", "RGB", {"subsampling": 2}),
    "smooth_422_progressive": ("smooth", "RGB", {"subsampling": 1, "progressive": True}),
    "smooth_420_q95_restart": ("smooth", "RGB", {"subsampling": 2, "quality": 95, "restart_marker_rows": 1}),
    "gray_noisy_baseline": ("noisy", "L", {}),
    "gray_smooth_progressive": ("smooth", "L", {"progressive": True}),
    "cmyk_noisy_baseline": ("noisy", "CMYK", {}),
    "cmyk_smooth_progressive": ("smooth", "CMYK", {"progressive": True}),
}


def make(content, mode):
    channels = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
    arr = (noisy if content == "noisy" else smooth)(channels)
    return Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)


def scan_start(data: bytes) -> int:
    """Offset just after the first SOS segment (where the entropy-coded data begins)."""
    i = data.index(b"\xff\xda")
    return i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")


def main():
    os.makedirs(DIR, exist_ok=True)
    cases = []
    for name, (content, mode, opts) in CASES.items():
        buf = io.BytesIO()
        make(content, mode).save(buf, "JPEG", quality=opts.pop("quality", 85), **opts)
        data = buf.getvalue()
        with open(os.path.join(DIR, name + ".jpg"), "wb") as f:
            f.write(data)

        opened = Image.open(io.BytesIO(data))
        opened_mode = opened.mode
        rgb = opened.convert("RGB")
        rgb.save(os.path.join(DIR, name + ".png"), optimize=True)
        arr = np.asarray(rgb)

        # Pillow refuses the file cut at half of its scan data.
        start = scan_start(data)
        cut = data[: start + (len(data) - start) // 2]
        try:
            Image.open(io.BytesIO(cut)).load()
            truncated = None
        except OSError as e:
            truncated = str(e)
        assert truncated and "truncated" in truncated, (name, truncated)

        cases.append(
            {
                "name": name,
                "mode": opened_mode,
                "width": rgb.width,
                "height": rgb.height,
                "rgb_fnv1a": fnv1a64(arr.tobytes()),
                "samples": [arr[y, x].tolist() for (x, y) in [(0, 0), (W - 1, 0), (22, 18), (W - 1, H - 1)]],
                "truncated_error": truncated,
            }
        )

    # What Pillow does at the end of the data: no EOI marker (refused), junk after it, stray bytes before it.
    name = "noisy_420_baseline"
    with open(os.path.join(DIR, name + ".jpg"), "rb") as f:
        data = f.read()
    assert data.endswith(b"\xff\xd9")
    end_variants = {"case": name}
    for label, variant in [
        ("no_eoi", data[:-2]),
        ("junk_after_eoi", data + b"junkjunkjunk"),
        ("bytes_before_eoi", data[:-2] + b"\x00\x01\x02\xff\xd9"),
    ]:
        try:
            im = Image.open(io.BytesIO(variant))
            im.load()
            assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
            end_variants[label] = "ok"
        except OSError as e:
            end_variants[label] = str(e)

    ref = {
        "versions": {
            "pillow": PIL.__version__,
            "libjpeg_turbo": features.version("libjpeg_turbo"),
            "numpy": np.__version__,
        },
        "load_truncated_images": ImageFile.LOAD_TRUNCATED_IMAGES,
        "max_image_pixels": Image.MAX_IMAGE_PIXELS,
        "cases": cases,
        "end_variants": end_variants,
    }
    with open(OUT, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} and {len(cases)} cases under {DIR}")


if __name__ == "__main__":
    main()
