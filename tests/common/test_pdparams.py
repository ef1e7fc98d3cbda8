"""common/pdparams.py's restricted unpickler refuses every global that can run code, before anything is
called: each payload below would create a file if admitted (the control run with plain `pickle` proves
it does), and the reader raises a UserError naming the global while the file stays absent."""
from __future__ import annotations

import os
import pickle
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.pdparams import read_pdparams, write_pdparams


class _Touch:
    """Pickles as `os.system("touch PATH")`: the inner payload of the nested cases."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.system, (f"touch '{self.target}'",)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _value(obj: Any) -> bytes:
    """The opcodes that push `obj` (protocol 2, without PROTO and STOP)."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def _state_dict_with(call: bytes) -> bytes:
    """{"conv.weight": <call>}: the payload sits where a tensor belongs."""
    key = b"conv.weight"
    return b"\x80\x02}(X" + struct.pack("<I", len(key)) + key + call + b"u."


def _payloads(target: Path, tmp: Path) -> dict[str, tuple[bytes, bool]]:
    """id -> (pickle, live): live payloads create `target` when loaded by plain `pickle.loads`."""
    code = f"open({str(target)!r}, 'w').close()"
    shell, argv = f"touch '{target}'", ["touch", str(target)]
    evil_npy = tmp / "evil.npy"
    np.save(evil_npy, np.array([_Touch(target), 0], dtype=object), allow_pickle=True)
    script = tmp / "evil.py"
    script.write_text(code + "\n")

    def call(module: str, name: str, *args: Any) -> bytes:
        return _global(module, name) + _value(args) + b"R"

    partial = _global("functools", "partial") + b"(" + _global("os", "system") + _value(shell) + b"tR)R"
    windows = sys.platform == "win32"
    calls = {
        "builtins.eval": (call("builtins", "eval", code), True),
        "builtins.exec": (call("builtins", "exec", code), True),
        "builtins.open": (call("builtins", "open", str(target), "w"), True),
        "builtins.compile": (call("builtins", "compile", code, "x", "exec"), False),
        "builtins.getattr": (call("builtins", "getattr", "s", "upper"), False),
        "builtins.__import__": (call("builtins", "__import__", "os"), False),
        "os.system": (call("os", "system", shell), True),
        "posix.system": (call("posix", "system", shell), not windows),
        "nt.system": (call("nt", "system", shell), False),
        "os.popen": (call("os", "popen", shell), False),
        "subprocess.Popen": (call("subprocess", "Popen", argv), True),
        "subprocess.call": (call("subprocess", "call", argv), True),
        "subprocess.run": (call("subprocess", "run", argv), True),
        "subprocess.check_output": (call("subprocess", "check_output", argv), True),
        "functools.partial(os.system)": (partial, True),
        "numpy.load(allow_pickle)": (call("numpy", "load", str(evil_npy), None, True), True),
        "numpy.testing.runstring": (call("numpy.testing", "runstring", code, {}), True),
        "numpy.testing._private.utils.runstring": (call("numpy.testing._private.utils", "runstring", code, {}), True),
        "numpy.ctypeslib.load_library": (call("numpy.ctypeslib", "load_library", "libc", "/lib"), False),
        "pickle.loads": (call("pickle", "loads", pickle.dumps(_Touch(target))), True),
        "_pickle.loads": (call("_pickle", "loads", pickle.dumps(_Touch(target))), True),
        "importlib.import_module": (call("importlib", "import_module", "os"), False),
        "runpy.run_path": (call("runpy", "run_path", str(script)), True),
        "operator.methodcaller": (call("operator", "methodcaller", "system", shell), False),
    }
    return {case: (_state_dict_with(body), live) for case, (body, live) in calls.items()}


CASES = [
    "builtins.eval", "builtins.exec", "builtins.open", "builtins.compile", "builtins.getattr", "builtins.__import__",
    "os.system", "posix.system", "nt.system", "os.popen", "subprocess.Popen", "subprocess.call", "subprocess.run",
    "subprocess.check_output", "functools.partial(os.system)", "numpy.load(allow_pickle)", "numpy.testing.runstring",
    "numpy.testing._private.utils.runstring", "numpy.ctypeslib.load_library", "pickle.loads", "_pickle.loads",
    "importlib.import_module", "runpy.run_path", "operator.methodcaller"]


def _appears(path: Path, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


@pytest.mark.parametrize("case", CASES)
def test_dangerous_global_is_refused_without_side_effect(case: str, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    payload, live = _payloads(target, tmp_path)[case]
    if live:  # control: plain pickle runs it, so the restricted reader has something to refuse
        pickle.loads(payload)
        assert _appears(target, 5.0), f"{case}: the payload is not live"
        target.unlink()
    path = tmp_path / "evil.pdparams"
    path.write_bytes(payload)
    module = case.split("(")[0].rpartition(".")[0] if "(" not in case else case.split(".")[0]
    with pytest.raises(UserError, match=f"evil.pdparams: unsafe or corrupt pickle: refused to load global {module}"):
        read_pdparams(path)
    assert not _appears(target, 0.3 if case == "subprocess.Popen" else 0.0)


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    """An object array pickles its elements: their globals meet the same refusal."""
    path, target = tmp_path / "obj.pdparams", tmp_path / "pwned"
    path.write_bytes(pickle.dumps({"w": np.array([_Touch(target), 0], dtype=object)}, protocol=4))
    with pytest.raises(UserError, match="refused to load global posix.system|refused to load global nt.system"):
        read_pdparams(path)
    assert not target.exists()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64])
def test_a_plain_state_dict_loads(tmp_path: Path, dtype: type) -> None:
    arrays = {"conv._conv.weight": np.arange(24, dtype=dtype).reshape(2, 3, 2, 2), "out.bias": np.ones(3, dtype)}
    write_pdparams(tmp_path / "w.pdparams", arrays)
    assert (tmp_path / "w.pdparams").read_bytes()[:2] == b"\x80\x04"  # pickle protocol 4, as paddle.save writes
    loaded = read_pdparams(tmp_path / "w.pdparams")
    assert loaded.keys() == arrays.keys()
    assert all(loaded[k].dtype == dtype and np.array_equal(loaded[k], arrays[k]) for k in arrays)


def test_paddle_save_structure_table_is_dropped(tmp_path: Path) -> None:
    """paddle.save adds a name-structure table of strings; it is not a tensor and is dropped, the rest kept."""
    arrays = {"A.weight": np.ones(2, np.float32), "z.weight": np.zeros(3, np.float32)}  # sort before and after it
    path = tmp_path / "w.pdparams"
    path.write_bytes(pickle.dumps({**arrays, "StructuredToParameterName@@": {"A.weight": "linear_0.w_0"}}, protocol=4))
    loaded = read_pdparams(path)
    assert sorted(loaded) == sorted(arrays) and all(np.array_equal(loaded[k], arrays[k]) for k in arrays)


@pytest.mark.parametrize("content,message", [
    (pickle.dumps({"w": np.ones(3, np.float32)}, protocol=4)[:-20], "unsafe or corrupt pickle: pickle data was truncated"),
    (b"", "truncated or corrupt .pdparams \\(EOFError"),
    (b"\x80\x02Iabc\n.", "truncated or corrupt .pdparams \\(ValueError"),  # an int that is not one
    (b"\x80\x04K\x01)R.", "truncated or corrupt .pdparams \\(TypeError"),  # calls an int
    (b"\x80\x02K\x01}b.", "truncated or corrupt .pdparams \\(AttributeError"),  # sets state on an int
    (b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 62) + b".", "truncated or corrupt .pdparams \\(MemoryError"),
    (pickle.dumps([np.ones(3, np.float32)], protocol=4), "expected a state dict \\(name -> array\\), found list"),
    (pickle.dumps({"w": [1.0, 2.0]}, protocol=4), "key w: expected a numeric array, found list"),
    (pickle.dumps({"w": np.ones(2), "v": 3.0}, protocol=4), "key v: expected a numeric array, found float"),
    (pickle.dumps({"w": np.array([1, "x"], dtype=object)}, protocol=4), "key w: expected a numeric array, found ndarray"),
], ids=["truncated", "empty", "bad int", "calls an int", "state on an int", "huge bytes", "a list", "a list value",
        "a float value", "an object array"])
def test_corrupt_files_are_user_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pdparams"
    path.write_bytes(content)
    with pytest.raises(UserError, match=f"bad.pdparams: {message}"):
        read_pdparams(path)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="gone.pdparams: no such file"):
        read_pdparams(tmp_path / "gone.pdparams")
