# Writes tiny_clip_pytorch_model.bin: the tiny reference CLIP's weights (tiny_clip/model.safetensors) in
# torch.save's zip format, as older hub repositories ship `pytorch_model.bin`, for the test that CLIP Lab loads
# such a checkpoint (experiments/tests/pytorch_bin.rs). No torch needed: the pickle names torch's rebuild function
# and storage classes the way torch.save writes them (protocol 2, one storage per tensor, `archive/data/<key>`).
#   python3 make_pytorch_bin.py      (from this folder)
import collections
import json
import pickle
import struct
import sys
import types
import zipfile

# Stand-ins registered under torch's names, so pickle writes GLOBAL torch._utils _rebuild_tensor_v2 etc.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
STORAGES = {}
for name in ["FloatStorage", "LongStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage"]:
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)
    STORAGES[name] = cls
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils

DTYPES = {"F32": ("FloatStorage", 4), "I64": ("LongStorage", 8), "F16": ("HalfStorage", 2),
          "BF16": ("BFloat16Storage", 2), "F64": ("DoubleStorage", 8)}


class Storage:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.numel = key, cls, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (_rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


with open("tiny_clip/model.safetensors", "rb") as f:
    raw = f.read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
state, blobs = collections.OrderedDict(), {}
for i, (name, info) in enumerate(sorted((k, v) for k, v in header.items() if k != "__metadata__")):
    storage_name, size = DTYPES[info["dtype"]]
    start, end = info["data_offsets"]
    key = str(i)
    blobs[key] = data[start:end]
    state[name] = Tensor(Storage(key, STORAGES[storage_name], (end - start) // size), info["shape"])

import io
buf = io.BytesIO()
Pickler(buf, protocol=2).dump(state)
with zipfile.ZipFile("tiny_clip_pytorch_model.bin", "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    for key, b in blobs.items():
        z.writestr(f"archive/data/{key}", b)
    z.writestr("archive/version", "3\n")
print(f"wrote tiny_clip_pytorch_model.bin: {len(state)} tensors")
