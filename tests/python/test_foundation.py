"""Foundation: error mapping, zero-copy tensors, clear errors for bad files."""
import pytest
import torch

import tessera as ts
from tessera import _core, _testhooks  # noqa: F401 (_testhooks: built with the tests)

KINDS = {
    "InvalidArgument": (ts.InvalidArgumentError, ValueError),
    "NotFound": (ts.NotFoundError, FileNotFoundError),
    "Engine": (ts.EngineError, RuntimeError),
    "Deadline": (ts.DeadlineError, TimeoutError),
    "Unsupported": (ts.UnsupportedError, NotImplementedError),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cpp_errors_map_to_builtin_subclasses(kind):
    cls, builtin = KINDS[kind]
    assert issubclass(cls, ts.TesseraError) and issubclass(cls, builtin)
    with pytest.raises(cls) as info:
        _testhooks.raise_kind(kind, "atom 7 is broken")
    assert isinstance(info.value, builtin)
    msg = str(info.value)
    assert "atom 7 is broken" in msg
    assert "testhooks.cpp" in msg  # where it was raised: function, file and line


def test_tensors_cross_the_binding_without_copies():
    x = torch.randn(1000)
    (y,) = _testhooks.tensor_roundtrip([x])
    assert y.data_ptr() == x.data_ptr()
    assert _testhooks.tensor_data_ptr(x) == x.data_ptr()  # C++ sees Python's buffer
    t, cpp_ptr = _testhooks.make_tensor(10)
    assert t.data_ptr() == cpp_ptr  # Python sees C++'s buffer
    assert t[3].item() == 3.0


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope" / "model.pt"
    with pytest.raises(FileNotFoundError, match=str(path)):
        ts.load(str(path), torch.randn(1, 3, 8, 8))


def test_not_torchscript_is_named(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("this is not a model")
    with pytest.raises(ValueError, match="notes.pt.*not a TorchScript"):
        ts.load(str(path), torch.randn(1, 3, 8, 8))


def test_bad_source_type():
    with pytest.raises(ValueError, match="cannot load a int"):
        ts.load(42, torch.randn(1))
    with pytest.raises(ValueError, match="input 0 is a str"):
        ts.load(torch.nn.ReLU(), ("x",))


def test_import_order_is_handled():
    # the package imports torch before the compiled module; importing tessera
    # first in a fresh interpreter must work
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", "import tessera, torch; print(tessera.__version__)"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ts.__version__
