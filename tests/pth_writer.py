"""Write ``torch.save`` files without torch, for tests that run where PyTorch is not installed.

A checkpoint (nested dicts, lists and tuples of numpy arrays, strings, numbers, booleans and None) is pickled with
protocol 2, opcode by opcode, the way ``torch.save`` pickles it: each array becomes
``torch._utils._rebuild_tensor_v2(<storage persistent id>, offset, size, stride, False, OrderedDict())`` and its
bytes a storage record, in a zip archive (``archive/data.pkl``, ``archive/data/<key>``) or, with ``legacy=True``,
in the stream format of PyTorch before 1.6. With torch installed the tests check that ``torch.load`` reads these
files back as written.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

STORAGES = {np.dtype("float32"): "FloatStorage", np.dtype("float16"): "HalfStorage",
            np.dtype("int64"): "LongStorage", np.dtype("float64"): "DoubleStorage"}  # fmt: skip
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Writer:
    def __init__(self, legacy: bool):
        self.out = io.BytesIO()
        self.records: dict[str, np.ndarray] = {}
        self.legacy = legacy

    def op(self, data: bytes) -> None:
        self.out.write(data)

    def text(self, value: str) -> None:
        data = value.encode()
        self.op(b"X" + struct.pack("<I", len(data)) + data)

    def global_(self, module: str, name: str) -> None:
        self.op(b"c" + f"{module}\n{name}\n".encode())

    def tuple_(self, items) -> None:
        self.op(b"(")
        for item in items:
            self.value(item)
        self.op(b"t")

    def value(self, obj) -> None:
        if obj is None:
            self.op(b"N")
        elif obj is True or obj is False:
            self.op(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int):
            if -(2**31) <= obj < 2**31:
                self.op(b"J" + struct.pack("<i", obj))
            else:
                data = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
                self.op(b"\x8a" + bytes([len(data)]) + data)
        elif isinstance(obj, float):
            self.op(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, str):
            self.text(obj)
        elif isinstance(obj, np.ndarray):
            self.tensor(obj)
        elif isinstance(obj, dict):
            self.op(b"}")
            if obj:
                self.op(b"(")
                for key, item in obj.items():
                    self.value(key)
                    self.value(item)
                self.op(b"u")
        elif isinstance(obj, list):
            self.op(b"]")
            if obj:
                self.op(b"(")
                for item in obj:
                    self.value(item)
                self.op(b"e")
        elif isinstance(obj, tuple):
            self.tuple_(obj)
        else:
            raise TypeError(f"cannot write {type(obj).__name__}")

    def tensor(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        key = str(len(self.records))
        self.records[key] = array
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.op(b"(")
        self.op(b"(")  # the persistent id: ('storage', torch.<Kind>Storage, key, 'cpu', numel[, None])
        self.text("storage")
        self.global_("torch", STORAGES[array.dtype])
        self.text(key)
        self.text("cpu")
        self.value(int(array.size))
        if self.legacy:
            self.op(b"N")
        self.op(b"tQ")
        self.value(0)
        self.tuple_(array.shape)
        self.tuple_(tuple(s // array.itemsize for s in array.strides))
        self.op(b"\x89")  # requires_grad
        self.global_("collections", "OrderedDict")
        self.op(b")R")  # OrderedDict(): no backward hooks
        self.op(b"tR")

    def pickle(self, obj) -> bytes:
        self.op(b"\x80\x02")
        self.value(obj)
        self.op(b".")
        return self.out.getvalue()


def save(obj, path: str | Path, legacy: bool = False) -> Path:
    """Write ``obj`` as ``torch.save`` would (zip format; ``legacy``: the pre-1.6 stream)."""
    writer = _Writer(legacy)
    data = writer.pickle(obj)
    path = Path(path)
    if legacy:
        with open(path, "wb") as out:
            for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                                 "type_sizes": {"short": 2, "int": 4, "long": 8}}):  # fmt: skip
                pickle.dump(header, out, protocol=2)
            out.write(data)
            pickle.dump(list(writer.records), out, protocol=2)
            for array in writer.records.values():
                out.write(struct.pack("<q", array.size) + array.astype(array.dtype.newbyteorder("<")).tobytes())
        return path
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for key, array in writer.records.items():
            archive.writestr(f"archive/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes())
    return path
