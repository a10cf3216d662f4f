"""Read the tensor state dict of a ``torch.save`` file into numpy, without torch and without running code.

Two layouts exist. The zip format (PyTorch >= 1.6) holds ``<name>/data.pkl`` and one raw
record per storage, ``<name>/data/<key>`` (byte order in ``<name>/byteorder``). The legacy
format (before PyTorch 1.6; torchvision's ``vgg19-dcbb9e9d.pth`` is one) is a stream:
pickles of a magic number, a protocol version and system info, the object, the list of
storage keys, then each storage as a little-endian int64 element count and its raw
little-endian data. In both the object's pickle names storages by persistent ids
``('storage', storage_type, key, location, numel[, view])`` and rebuilds tensors with
``torch._utils._rebuild_tensor_v2``, ``_rebuild_tensor_v3`` (``UntypedStorage`` bytes plus
a ``torch.<dtype>`` argument) or, in files from 2017, ``_rebuild_tensor`` or
``torch.FloatTensor()`` followed by BUILD.

The unpickler resolves only those globals, typed storage and tensor classes, dtypes,
``collections.OrderedDict`` and ``torch._utils._rebuild_parameter``, each to an inert
stand-in defined here; any other global (``os.system``, ``builtins.eval``, a pickled
``nn.Module``) raises :class:`UserError` before anything is called. The stand-ins are
tuples, which a pickle cannot alter, and functions that only record their arguments. A checkpoint may
hold more than a state dict (BasicSR's ``{"params_ema": ...}``, a training run's epoch, optimizer state and
state dict): the caller's ``select`` picks the state dict inside the unpickled object, and only its tensors
are read. Tensors are decoded after unpickling, with offsets and strides checked against the storage size before a
strided view is taken. numpy has no bfloat16, so bfloat16 tensors come back widened
(exactly) to float32.
"""

from __future__ import annotations

import collections
import math
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from srgan_mlx.errors import UserError

BFLOAT16 = "bfloat16"
# torch dtype name -> numpy type code without byte order
DTYPES = {
    "float64": "f8", "float32": "f4", "float16": "f2", BFLOAT16: "u2",
    "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1",
    "uint64": "u8", "uint32": "u4", "uint16": "u2", "uint8": "u1", "bool": "b1",
    "complex128": "c16", "complex64": "c8",
}  # fmt: skip
DTYPE_ALIASES = {"double": "float64", "float": "float32", "half": "float16", "long": "int64", "int": "int32",
                 "short": "int16", "cdouble": "complex128", "cfloat": "complex64"}  # fmt: skip
# legacy typed storage class -> torch dtype name
STORAGE_TYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": BFLOAT16,
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
}  # fmt: skip
TORCH_MODULES = ("torch", "torch.cuda")  # where typed storage and tensor classes live
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


class StorageType(NamedTuple):
    """What ``torch.FloatStorage`` (or ``UntypedStorage``, as bytes) unpickles to here."""

    dtype: str


class DType(NamedTuple):
    """What a ``torch.<dtype>`` global unpickles to here."""

    name: str


class StorageRef(NamedTuple):
    """A storage named in the pickle: elements ``start`` to ``start + numel`` of record ``key``."""

    key: str
    dtype: str
    start: int = 0
    numel: int | None = None  # None: to the end of the record


class TensorRef(NamedTuple):
    """A tensor named in the pickle, decoded once its storage's bytes are read."""

    storage: StorageRef
    dtype: str
    offset: int
    size: tuple
    stride: tuple


def _tensor(storage, offset, size, stride, dtype: str | None = None) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise UserError(f"unexpected tensor storage {storage!r}")
    return TensorRef(storage, dtype or storage.dtype, offset, tuple(size), tuple(stride))


def _rebuild_tensor(storage, offset, size, stride):
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    if not isinstance(dtype, DType):
        raise UserError(f"unexpected tensor dtype {dtype!r}")
    return _tensor(storage, offset, size, stride, dtype.name)


def _rebuild_parameter(data, requires_grad, hooks):
    return data


class LegacyTensor:
    """PyTorch 0.1 pickled a tensor as ``torch.FloatTensor()`` then BUILD ``(storage, offset, size, stride)``.

    Subclasses named after the tensor types stand in for those classes.
    """

    ref: TensorRef | None = None

    def __setstate__(self, state):
        self.ref = _tensor(*state)


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "UntypedStorage"): StorageType("uint8"),
    ("torch", "UntypedStorage"): StorageType("uint8"),
    **{(module, name): StorageType(dtype) for module in TORCH_MODULES for name, dtype in STORAGE_TYPES.items()},
    **{
        (module, name.replace("Storage", "Tensor")): type(name.replace("Storage", "Tensor"), (LegacyTensor,), {})
        for module in TORCH_MODULES
        for name in STORAGE_TYPES
    },
    **{("torch", name): DType(name) for name in DTYPES},
    **{("torch", alias): DType(name) for alias, name in DTYPE_ALIASES.items()},
}


class _Unpickler(pickle.Unpickler):
    """Knows only :data:`ALLOWED_GLOBALS`; turns storage ids into :class:`StorageRef`."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UserError(
                f"refusing to load global {module}.{name}: only tensor state dicts are accepted "
                "(nothing in the file was run)"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise UserError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, StorageType):
            raise UserError(f"unexpected storage type {storage_type!r}")
        view = pid[5] if len(pid) == 6 else None  # legacy storage view: (view_key, offset, numel)
        if view is None:
            return StorageRef(key, storage_type.dtype)
        return StorageRef(key, storage_type.dtype, start=view[1], numel=view[2])


def _decode(tensor: TensorRef, records: dict[str, bytes], byteorder: str) -> np.ndarray:
    """``tensor`` as a new native-order array, after checking that its layout lies inside its storage."""
    storage = tensor.storage
    if storage.dtype not in DTYPES or tensor.dtype not in DTYPES:
        raise UserError(f"tensor dtype {tensor.dtype} (storage {storage.dtype}) is not supported")
    code = np.dtype(DTYPES[tensor.dtype]).newbyteorder("<" if byteorder == "little" else ">")
    data, unit = records[storage.key], np.dtype(DTYPES[storage.dtype]).itemsize
    start = storage.start * unit
    stop = len(data) if storage.numel is None else start + storage.numel * unit
    if not 0 <= start <= stop <= len(data) or (stop - start) % code.itemsize:
        raise UserError(f"storage {storage.key} does not hold whole {tensor.dtype} elements (corrupt file)")
    flat = np.frombuffer(data, dtype=code, count=(stop - start) // code.itemsize, offset=start)
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in (*size, *stride, offset)):
        raise UserError(f"bad tensor layout: size {size}, stride {stride}, offset {offset}")
    if math.prod(size) > flat.size:
        raise UserError(f"tensor of size {size} has more elements than its storage ({flat.size})")
    if 0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= flat.size:
        raise UserError(f"tensor of size {size} at offset {offset} runs past its storage of {flat.size} elements")
    base = flat[offset:] if 0 not in size else flat[:0]
    array = as_strided(base, shape=size, strides=[s * code.itemsize for s in stride]).astype(code.newbyteorder("="))
    if tensor.dtype == BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _tensor_refs(state) -> dict[str, TensorRef]:
    """Check that the unpickled object is a flat ``{name: tensor}`` dict."""
    if not isinstance(state, dict):
        raise UserError(f"does not hold a state dict of tensors (found {type(state).__name__})")
    refs = {k: v.ref if isinstance(v, LegacyTensor) else v for k, v in state.items()}
    bad = [k for k, v in refs.items() if not (isinstance(k, str) and isinstance(v, TensorRef))]
    if bad:
        raise UserError(f"does not hold a state dict of tensors (entry {bad[0]!r} is not a tensor)")
    return refs


def _every_tensor(obj) -> list[TensorRef]:
    """Every tensor anywhere in an unpickled object (inside dicts, lists and tuples; a cycle is walked once)."""
    found, todo, seen = [], [obj], set()
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        item = item.ref if isinstance(item, LegacyTensor) else item
        if isinstance(item, TensorRef):
            found.append(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)) and not isinstance(item, (StorageRef, StorageType, DType)):
            todo.extend(item)
    return found


Select = Callable[[object], object]


def _whole(obj):
    return obj


def _read_zip(
    path: Path, keep: Callable[[str], bool], select: Select
) -> tuple[dict[str, TensorRef], dict[str, bytes], str]:
    """The kept tensors of the selected state dict, their storage records and the byte order of a zip-format file."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError("truncated or corrupt zip archive") from None
    with archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise UserError("no single <name>/data.pkl in the zip archive; not a torch.save file")
        prefix = pickles[0].removesuffix("data.pkl")
        byteorder = archive.read(f"{prefix}byteorder").decode() if f"{prefix}byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise UserError(f"unknown byte order {byteorder!r}")
        with archive.open(pickles[0]) as handle:
            tensors = {k: v for k, v in _tensor_refs(select(_Unpickler(handle).load())).items() if keep(k)}
        records = {}
        for key in {t.storage.key for t in tensors.values()}:
            if f"{prefix}data/{key}" not in names:
                raise UserError(f"storage record data/{key} is missing (truncated or corrupt file)")
            records[key] = archive.read(f"{prefix}data/{key}")
    return tensors, records, byteorder


def _read_legacy(
    handle: BinaryIO, keep: Callable[[str], bool], select: Select
) -> tuple[dict[str, TensorRef], dict[str, bytes], str]:
    """The kept tensors of the selected state dict and their storage records from a legacy-format stream (skipping
    the other storages)."""
    if _Unpickler(handle).load() != LEGACY_MAGIC_NUMBER or _Unpickler(handle).load() != LEGACY_PROTOCOL_VERSION:
        raise UserError("unknown legacy torch.save header")
    _Unpickler(handle).load()  # system info
    obj = _Unpickler(handle).load()
    dtypes = {t.storage.key: t.storage.dtype for t in _every_tensor(obj)}
    tensors = {k: v for k, v in _tensor_refs(select(obj)).items() if keep(k)}
    needed = {t.storage.key for t in tensors.values()}
    records = {}
    for key in map(str, _Unpickler(handle).load()):
        if key not in dtypes:
            raise UserError(f"storage {key} is not used by any tensor (corrupt file)")
        (numel,) = struct.unpack("<q", handle.read(8))
        nbytes = numel * np.dtype(DTYPES[dtypes[key]]).itemsize
        if not 0 <= nbytes <= os.fstat(handle.fileno()).st_size - handle.tell():
            raise UserError(f"storage {key} runs past the end of the file (truncated)")
        if key in needed:
            records[key] = handle.read(nbytes)
        else:
            handle.seek(nbytes, os.SEEK_CUR)
    missing = sorted(needed - set(records))
    if missing:
        raise UserError(f"storage data for {', '.join(missing)} is missing (truncated or corrupt file)")
    return tensors, records, "little"


def _is_legacy(head: bytes) -> bool:
    """Whether ``head`` starts with a pickled :data:`LEGACY_MAGIC_NUMBER` (protocol 2 or later)."""
    return head[:1] == b"\x80" and head[2:14] == b"\x8a\x0a" + LEGACY_MAGIC_NUMBER.to_bytes(10, "little")


def is_torch_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a ``torch.save`` file: a zip archive or a legacy-format stream."""
    with open(path, "rb") as handle:
        head = handle.read(14)
    return head.startswith(b"PK\x03\x04") or _is_legacy(head)


def load_state_dict(
    path: str | os.PathLike, keep: Callable[[str], bool] = lambda name: True, select: Select = _whole
) -> dict[str, np.ndarray]:
    """Read the ``{name: tensor}`` dict a ``torch.save`` file (zip or legacy format) holds, as numpy arrays.

    ``select`` is given the unpickled object (tensors in it are stand-ins, nothing read yet) and returns the state
    dict inside it (default: the object itself), or raises :class:`UserError`. Every entry of that dict must be a
    tensor; only those whose name passes ``keep`` are decoded and returned.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(14)
        handle.seek(0)
        try:
            if head.startswith(b"PK\x03\x04"):
                tensors, records, byteorder = _read_zip(path, keep, select)
            elif _is_legacy(head):
                tensors, records, byteorder = _read_legacy(handle, keep, select)
            else:
                raise UserError("not a torch.save file (neither its zip nor its legacy format)")
            return {name: _decode(tensor, records, byteorder) for name, tensor in tensors.items()}
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from None
        except Exception as exc:  # anything else a malformed archive or pickle raises
            raise UserError(f"{path}: corrupt torch.save file ({type(exc).__name__}: {exc})") from None
