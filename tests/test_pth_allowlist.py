"""The restricted unpickler's allow-list (convert/pth.py), pinned: a global admitted by mistake fails here.

To change the list on purpose (another file format needs a global), edit ``EXPECTED`` below
in the same commit, and add a test, beside the refusal tests in ``test_pth.py``, of what a
pickle can do with the new global.
"""

import collections
import io

import pytest

from srgan_mlx.convert import pth
from srgan_mlx.errors import UserError

# Written out from what torch.save pickles, not read from convert/pth.py's tables.
STORAGE_KINDS = (
    "Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool", "ComplexDouble",
    "ComplexFloat",
)  # fmt: skip
DTYPE_NAMES = (
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
    "uint64", "uint32", "uint16", "uint8", "bool", "complex128", "complex64",
    "double", "float", "half", "long", "int", "short", "cdouble", "cfloat",
)  # fmt: skip

EXPECTED = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "UntypedStorage"),
    ("torch.storage", "UntypedStorage"),
    *((module, kind + suffix) for module in ("torch", "torch.cuda") for kind in STORAGE_KINDS
      for suffix in ("Storage", "Tensor")),
    *(("torch", name) for name in DTYPE_NAMES),
}  # fmt: skip


def test_allow_list_is_exactly_the_pinned_set():
    allowed = set(pth.ALLOWED_GLOBALS)
    extra, missing = sorted(allowed - EXPECTED), sorted(EXPECTED - allowed)
    assert not extra and not missing, f"admitted beyond the pin: {extra}; pinned but no longer admitted: {missing}"


def test_every_allowed_global_is_an_inert_stand_in():
    """Each name resolves to OrderedDict or to something convert/pth.py defines, never to torch's or Python's own."""
    for key, value in pth.ALLOWED_GLOBALS.items():
        if key == ("collections", "OrderedDict"):
            assert value is collections.OrderedDict
        else:
            assert getattr(value, "__module__", None) == "srgan_mlx.convert.pth", (key, value)


@pytest.mark.parametrize(
    "module, name",
    [("builtins", "getattr"), ("builtins", "__import__"), ("torch", "load"), ("torch.nn.modules.conv", "Conv2d"),
     ("numpy.core.multiarray", "_reconstruct"), ("collections", "defaultdict")],
)  # fmt: skip
def test_other_globals_are_refused_before_anything_runs(module, name):
    stream = io.BytesIO(f"c{module}\n{name}\n.".encode())  # protocol-0 GLOBAL: just look the name up
    with pytest.raises(UserError, match=f"refusing to load global {module}.{name}"):
        pth._Unpickler(stream).load()
