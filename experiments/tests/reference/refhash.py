"""FNV-1a (64-bit) over bytes, as hex: the hash the reference scripts store and the Rust tests recompute
(jpeg.rs, preprocess.rs). Shared by jpeg_ref.py and preprocess_ref.py."""


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"
