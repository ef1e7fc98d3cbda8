"""Property-based fuzzing of every input the CLI reads: valid files of each format, then mutated (truncated,
bytes flipped, dtypes, shapes, keys, wrappers, header spec fields changed), and option values.

The contract, per run: exit 0 with a correct result (the output reads back to the same canonical weights
as the input), or exit 2 with exactly one stderr line, no traceback, no new file, an existing output
unchanged and no temporary file left. The default profile ("ci") keeps the whole file to about a minute;
`RESNET_ROSETTA_FUZZ=long pytest tests/fuzz` runs many more examples.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from resnet_rosetta.cli.main import build_parser, main
from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.pdparams import write_pdparams
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks.flax.files import write_native as write_msgpack
from resnet_rosetta.frameworks.weights import read_weights

settings.register_profile("ci", max_examples=8, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=300, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = os.environ.get("RESNET_ROSETTA_FUZZ", "ci")

SPEC = get_spec("resnet18_small")
PRECIOUS = b"an earlier good result"
EXTENSIONS = (".safetensors", ".pth", ".pdparams", ".msgpack")


@functools.lru_cache(maxsize=None)
def _weights() -> dict[str, np.ndarray]:
    return random_weights(SPEC, seed=0)


def _write(path: Path, native: dict[str, object]) -> None:
    """`native` (format names) in the format of `path`'s extension; .pth values may be any object."""
    ext = path.suffix
    if ext == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in native.items()}, str(path),  # type: ignore[arg-type]
                  metadata={"spec": SPEC.to_json()})
    elif ext == ".pth":
        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                    for k, v in native.items()}, path)
    elif ext == ".pdparams":
        write_pdparams(path, native)  # type: ignore[arg-type]
    else:
        write_msgpack(path, native)  # type: ignore[arg-type]


def _native(ext: str) -> dict[str, np.ndarray]:
    fmt = {".safetensors": "torch", ".pth": "torch", ".pdparams": "paddle", ".msgpack": "flax"}[ext]
    return rules.to_native(_weights(), SPEC, fmt)


@functools.lru_cache(maxsize=None)
def _valid_bytes(ext: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"w{ext}"
        if ext == ".safetensors":
            save_canonical(path, _weights(), SPEC)
        else:
            _write(path, _native(ext))  # type: ignore[arg-type]
        return path.read_bytes()


def _run(argv: list[str], folder: Path, out: Path, precious: bool) -> tuple[int, str]:
    """Run the CLI in-process and check the contract's failure half; return (status, stderr)."""
    if precious:
        out.write_bytes(PRECIOUS)
    before = sorted(folder.iterdir())
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    text = err.getvalue().strip()
    assert "Traceback" not in text and "\x1b[" not in text, text
    assert rc in (0, 2), (rc, text)
    if rc == 2:
        assert len(text.splitlines()) == 1, text
        assert sorted(folder.iterdir()) == before, text  # nothing created, no temporary file left
        if precious:
            assert out.read_bytes() == PRECIOUS
    else:
        assert sorted(p for p in folder.iterdir()) == sorted(set(before) | {out})  # only the output, no temp file
    return rc, text


def _convert_contract(src_name: str, data: bytes | None, native: dict[str, object] | None, dst_ext: str,
                      precious: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        src, dst = folder / src_name, folder / f"out{dst_ext}"
        if data is not None:
            src.write_bytes(data)
        else:
            try:
                _write(src, native)  # type: ignore[arg-type]
            except (TypeError, ValueError, RuntimeError):
                return  # the writer itself cannot store this mutation: nothing to read
        rc, _ = _run(["convert", str(src), str(dst)], folder, dst, precious)
        if rc == 0:  # a correct result: DST holds exactly what SRC holds
            got, spec, _ = read_weights(dst)
            want, want_spec, _ = read_weights(src)
            assert got.keys() == want.keys()
            assert spec == want_spec or dst_ext != ".safetensors"  # native files carry no spec (input_size, bn_eps)
            assert all(np.array_equal(got[k].astype(np.float64), want[k].astype(np.float64)) for k in want)


byte_mutation = st.tuples(st.sampled_from(["truncate", "flip"]),
                          st.one_of(st.integers(0, 4096), st.floats(0.0, 1.0)), st.integers(1, 255))


def _mutate_bytes(raw: bytes, how: tuple[str, int | float, int]) -> bytes:
    kind, where, xor = how
    pos = int(where * (len(raw) - 1)) if isinstance(where, float) else min(int(where), len(raw) - 1)
    if kind == "truncate":
        return raw[:pos]
    return raw[:pos] + bytes([raw[pos] ^ xor]) + raw[pos + 1:]


@settings(settings.get_profile(PROFILE))
@given(src_ext=st.sampled_from(EXTENSIONS), how=byte_mutation, dst_ext=st.sampled_from(EXTENSIONS),
       precious=st.booleans())
def test_bytes_truncated_or_flipped(src_ext: str, how: tuple[str, int | float, int], dst_ext: str,
                                    precious: bool) -> None:
    _convert_contract(f"w{src_ext}", _mutate_bytes(_valid_bytes(src_ext), how), None, dst_ext, precious)


DTYPES = ["float16", "float64", "int32", "int64", "uint8", "bool", "complex64"]
structure = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 10**6)),
    st.tuples(st.just("extra"), st.sampled_from(["head.extra", "fc.weight.x", "", "module.fc"])),
    st.tuples(st.just("dtype"), st.integers(0, 10**6), st.sampled_from(DTYPES)),
    st.tuples(st.just("shape"), st.integers(0, 10**6), st.lists(st.integers(0, 3), min_size=0, max_size=4)),
    st.tuples(st.just("value"), st.integers(0, 10**6), st.sampled_from([math.nan, math.inf, 0.0, 1e38])),
)


def _mutate_dict(native: dict[str, np.ndarray], how: tuple) -> dict[str, object]:
    out: dict[str, object] = dict(native)
    keys = list(native)
    kind = how[0]
    if kind == "drop":
        del out[keys[how[1] % len(keys)]]
    elif kind == "extra":
        out[how[1]] = np.zeros(3, np.float32)
    else:
        key = keys[how[1] % len(keys)]
        arr = native[key]
        if kind == "dtype":
            out[key] = arr.astype(how[2])
        elif kind == "shape":
            out[key] = np.zeros(tuple(how[2]), np.float32)
        else:
            bad = arr.copy()
            bad.reshape(-1)[0] = how[2]
            out[key] = bad
    return out


@settings(settings.get_profile(PROFILE))
@given(src_ext=st.sampled_from(EXTENSIONS), how=structure, dst_ext=st.sampled_from(EXTENSIONS))
def test_keys_dtypes_shapes_and_values_changed(src_ext: str, how: tuple, dst_ext: str) -> None:
    native = _native(src_ext)
    if src_ext == ".safetensors" and how[0] == "dtype" and how[2] == "complex64":
        how = ("dtype", how[1], "int16")
    _convert_contract(f"w{src_ext}", None, _mutate_dict(native, how), dst_ext, precious=True)


json_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 5000), st.floats(allow_nan=True),
                        st.text(max_size=5), st.lists(st.integers(-1, 4), max_size=5))


@settings(settings.get_profile(PROFILE))
@given(field=st.sampled_from(sorted(json.loads(SPEC.to_json()))), value=json_values)
def test_header_spec_fields_changed(field: str, value: object) -> None:
    fields = json.loads(SPEC.to_json())
    fields[field] = value
    with tempfile.TemporaryDirectory() as d:
        from safetensors.numpy import save_file

        src = Path(d) / "w.safetensors"
        save_file(dict(_weights()), str(src), metadata={"spec": json.dumps(fields)})
        _convert_contract("w.safetensors", src.read_bytes(), None, ".msgpack", precious=True)


WRAPPERS = ["state_dict", "model", "model_state_dict", "state_dict_ema", "ema", "module.", "optimizer", "net"]


@settings(settings.get_profile(PROFILE))
@given(wrappers=st.lists(st.sampled_from(WRAPPERS), max_size=3), extra=st.sampled_from([None, 3, "x", [1], {}]))
def test_pth_wrappers(wrappers: list[str], extra: object) -> None:
    obj: object = {k: torch.from_numpy(v) for k, v in _native(".pth").items()}
    for w in wrappers:
        obj = {f"module.{k}": v for k, v in obj.items()} if w == "module." else {w: obj}  # type: ignore[union-attr]
    if extra is not None:
        obj = dict(obj, epoch=extra)  # type: ignore[call-overload]
    buf = io.BytesIO()
    torch.save(obj, buf)
    _convert_contract("w.pth", buf.getvalue(), None, ".safetensors", precious=False)


@settings(settings.get_profile(PROFILE))
@given(shape=st.lists(st.integers(0, 40), min_size=0, max_size=5), dtype=st.sampled_from(["<f4", ">f4", "<f2", "<i4"]),
       how=st.one_of(st.none(), byte_mutation))
def test_forward_inputs(shape: list[int], dtype: str, how: tuple | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        weights = folder / "w.safetensors"
        weights.write_bytes(_valid_bytes(".safetensors"))
        buf = io.BytesIO()
        np.save(buf, np.ones(shape, dtype) if np.prod(shape) < 10**5 else np.ones((1, 3, 8, 8), dtype))
        raw = buf.getvalue() if how is None else _mutate_bytes(buf.getvalue(), how)
        (folder / "x.npy").write_bytes(raw)
        out = folder / "y.npy"
        rc, _ = _run(["forward", "--framework", "torch", "--weights", str(weights), "--input", str(folder / "x.npy"),
                      "--output", str(out)], folder, out, precious=True)
        if rc == 0:
            x = np.load(folder / "x.npy")
            y = np.load(out)
            assert y.shape == (x.shape[0], SPEC.num_classes) and np.all(np.isfinite(y))


floats_text = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        st.sampled_from(["nan", "-inf", "1e400", "0", "-0.0", "abc", ""]))


@settings(settings.get_profile(PROFILE), max_examples=settings.get_profile(PROFILE).max_examples * 4)
@given(option=st.sampled_from([("bench", "--timeout"), ("bench", "--mem-limit"), ("bench", "--repeat-s"),
                               ("parity", "--lr"), ("report", "--budget-min"), ("report", "--parity-timeout"),
                               ("train", "--momentum"), ("train", "--weight-decay"), ("train", "--lr")]),
       text=floats_text)
def test_float_options(option: tuple[str, str], text: str) -> None:
    """A value either parses to a finite number, or the command exits 2 with one line before any work."""
    command, flag = option
    if command == "train":
        from resnet_rosetta.training.config import new_config

        try:
            config = new_config({flag[2:].replace("-", "_"): float(text)}, "torch")
        except (UserError, ValueError):
            pass
        else:
            assert math.isfinite(getattr(config, flag[2:].replace("-", "_")))
            return  # valid: a real run would start
    else:
        try:
            args = build_parser().parse_args([command, f"{flag}={text}"])
        except UserError:
            pass
        else:
            value = getattr(args, flag[2:].replace("-", "_"))
            assert math.isfinite(value) and value > 0
            return  # valid: a real run would start
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        which = ["--framework", "torch"] if command == "train" else []
        rc, err = _run([command, *which, f"{flag}={text}", "--out", str(out)], Path(d), out, precious=False)
        assert rc == 2 and flag in err
