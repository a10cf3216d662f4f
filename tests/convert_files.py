"""Stand-in ``torch.save`` files written by hand (PyTorch 0.1-0.3's legacy stream, the zip layout, pickles that
run code) and the VGG19 converter's command line, for test_pth and test_vgg19. Needs torch."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import torch
from click.testing import CliRunner

from srgan_mlx.convert import vgg19 as converter
from srgan_mlx.convert.pth import LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION

LEGACY_SYS_INFO = {"protocol_version": LEGACY_PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"long": 8}}


def cli(*args) -> object:
    """Run the converter's click command in-process."""
    return CliRunner().invoke(converter.command, [str(a) for a in args])


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    """The CLI's failure contract: a single ``error: ...`` line naming the problem, no traceback."""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    for fragment in fragments:
        assert fragment in stderr


def write_legacy(path: Path, obj_pickle: bytes, keys: list[str] = (), data: bytes = b"") -> Path:
    """A pre-1.6 ``torch.save`` stream: header pickles, ``obj_pickle``, storage keys, then storage data."""
    with open(path, "wb") as out:
        for header in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, LEGACY_SYS_INFO):
            pickle.dump(header, out, protocol=2)
        out.write(obj_pickle)
        pickle.dump(list(keys), out, protocol=2)
        out.write(data)
    return path


def save_like_2017(state: dict[str, torch.Tensor], path: Path, style: str = "reduce_build") -> Path:
    """Write float32 ``state`` as PyTorch 0.1-0.3 did, like torchvision's ``vgg19-dcbb9e9d.pth``.

    ``style`` ``reduce_build``: ``torch.FloatTensor()`` then BUILD; ``rebuild_tensor``:
    ``torch._utils._rebuild_tensor(storage, offset, size, stride)``.
    """

    class Storage:
        def __init__(self, key: str, numel: int):
            self.key, self.numel = key, numel

    class Tensor:
        def __init__(self, storage: Storage, tensor: torch.Tensor):
            self.storage, self.tensor = storage, tensor

        def __reduce__(self):
            layout = (self.storage, 0, tuple(self.tensor.shape), self.tensor.stride())
            if style == "rebuild_tensor":
                return torch._utils._rebuild_tensor, layout
            return torch.FloatTensor, (), layout

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel, None)
            return None

    tensors = {name: t.detach().float().contiguous() for name, t in state.items()}
    storages = {name: Storage(str(i), t.numel()) for i, (name, t) in enumerate(tensors.items())}
    obj = io.BytesIO()
    Pickler(obj, protocol=2).dump(collections.OrderedDict((n, Tensor(storages[n], t)) for n, t in tensors.items()))
    data = b"".join(struct.pack("<q", t.numel()) + t.numpy().astype("<f4").tobytes() for t in tensors.values())
    return write_legacy(path, obj.getvalue(), [s.key for s in storages.values()], data)


class Call:
    """Pickles as the call ``func(*args)``: what a malicious .pth runs when unpickled."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def write_zip(path: Path, obj_pickle: bytes) -> Path:
    """A zip laid out like ``torch.save``'s, holding ``obj_pickle`` as its data.pkl."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", obj_pickle)
        archive.writestr("archive/byteorder", "little")
    return path
