"""Bad inputs as data: every case builds its files in a fresh folder and names the CLI call that must be
refused, and a fragment of the one-line message. `tests/cli/test_bad_input_cases.py` runs them under the
contract (exit 2, one stderr line, no traceback or ANSI code, nothing written, nothing left behind) and
writes docs/bad-input.md from what they print."""
from __future__ import annotations

import functools
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.spec import get_spec

SPEC = get_spec("resnet18_small")
PRECIOUS = b"an earlier good result"
ANSI = re.compile(r"\x1b\[")


@functools.lru_cache(maxsize=None)
def base_weights() -> dict[str, np.ndarray]:
    return random_weights(SPEC, seed=0)


def weights() -> dict[str, np.ndarray]:
    return dict(base_weights())


def raw_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]],
                    metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written byte by byte, so any dtype string, shape or header can be stored."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    data, offset = b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def canonical_with(path: Path, ws: dict[str, np.ndarray], spec_json: str | None,
                   extra: dict[str, tuple[str, tuple[int, ...], bytes]] | None = None) -> None:
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64"}
    tensors = {k: (codes[v.dtype], v.shape, np.ascontiguousarray(v).tobytes()) for k, v in ws.items()}
    tensors.update(extra or {})
    meta = {"format": "resnet-rosetta-canonical", "format_version": "1"}
    if spec_json is not None:
        meta["spec"] = spec_json
    raw_safetensors(path, tensors, meta)


def spec_json(**changes: object) -> str:
    fields = json.loads(SPEC.to_json())
    fields.update(changes)
    return json.dumps(fields)


@dataclass(frozen=True)
class Case:
    """One bad input: `build(folder)` writes its files and returns the CLI arguments and the output path."""

    id: str
    kind: str  # the doc's section
    what: str  # one line for the doc
    build: Callable[[Path], tuple[list[str], Path | None]]
    expect: str  # a fragment the message must contain


def run_refused(case: Case, folder: Path, capsys) -> str:  # type: ignore[no-untyped-def]
    """Run `case` in `folder`; assert the whole contract; return the message with the folder removed."""
    argv, out = case.build(folder)
    if out is not None and not out.is_dir():
        out.write_bytes(PRECIOUS)
    before = set(folder.rglob("*"))
    capsys.readouterr()
    rc = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == 2, (rc, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and not ANSI.search(err), err
    assert case.expect in err, err
    if out is not None and out.is_file():
        assert out.read_bytes() == PRECIOUS
    assert set(folder.rglob("*")) == before  # nothing created, no temporary file left
    return err.replace(str(folder) + os.sep, "")


# ------------------------------------------------------------------------------------------ cases
CASES: list[Case] = []


def _convert(src_name: str, write: Callable[[Path], None], dst_name: str = "out.pth",
             extra: tuple[str, ...] = ()) -> Callable[[Path], tuple[list[str], Path | None]]:
    def build(folder: Path) -> tuple[list[str], Path | None]:
        write(folder / src_name)
        return ["convert", str(folder / src_name), str(folder / dst_name), *extra], folder / dst_name
    return build


for _dtype in ("F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F4"):
    CASES.append(Case(f"safetensors-{_dtype}", "weights", f"a safetensors tensor stored as {_dtype}",
                      _convert("w.safetensors", lambda p, d=_dtype: canonical_with(
                          p, {k: v for k, v in weights().items() if k != "fc.bias"}, SPEC.to_json(),
                          {"fc.bias": (d, (10,), bytes(10 if d != "F4" else 5))})),
                      f"key fc.bias: dtype {_dtype} cannot be read"))

_S = "spec resnet18_small: field"
for _field, _value, _fragment in [("groups", 0, f"{_S} groups: expected an integer in [1, 4096], found 0"),
                                  ("depths", [2, 2.5, 2, 2], f"{_S} depths: expected a non-empty list of integers"),
                                  ("in_channels", "3", f"{_S} in_channels: expected an integer in [1, 4096], found '3'"),
                                  ("num_classes", -1, f"{_S} num_classes: expected an integer in [1, 10000000], found -1"),
                                  ("bn_eps", "x", f"{_S} bn_eps: expected a finite number in (0, 1), found 'x'"),
                                  ("bn_eps", -1, f"{_S} bn_eps: expected a finite number in (0, 1), found -1"),
                                  ("bn_eps", float("nan"), f"{_S} bn_eps: expected a finite number in (0, 1), found nan"),
                                  ("width_per_group", 0, f"{_S} width_per_group: expected an integer"),
                                  ("stem", "huge", f"{_S} stem: expected imagenet or small or deep, found 'huge'"),
                                  ("downsample", "max", f"{_S} downsample: expected conv or avg, found 'max'"),
                                  ("depths", 2, "spec field depths: expected a list of integers, found 2"),
                                  ("colour", "red", "spec: unknown fields colour")]:
    CASES.append(Case(f"header-spec-{_field}-{_value}", "weights",
                      f"a safetensors header spec with {_field} = {json.dumps(_value)}",
                      _convert("w.safetensors", lambda p, f=_field, v=_value: canonical_with(
                          p, weights(), spec_json(**{f: v}))), f"w.safetensors: header: {_fragment}"))
CASES.append(Case("header-spec-not-json", "weights", "a safetensors header spec that is not JSON",
                  _convert("w.safetensors", lambda p: canonical_with(p, weights(), "{depths: oops")),
                  "header: spec is not valid JSON"))


def _torch_file(path: Path, state: dict[str, object]) -> None:
    import torch

    torch.save({k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}, path)


def _zero(key: str, shape: tuple[int, ...]) -> Callable[[Path], None]:
    return lambda p: _torch_file(p, dict(weights(), **{key: np.zeros(shape, np.float32)}))


CASES += [
    Case("zero-sized-fc", "weights", "a .pth whose fc.weight is (0, 512)", _convert("w.pth", _zero("fc.weight", (0, 512)),
         "out.safetensors"), "key fc.weight: zero-sized tensor of shape (0, 512)"),
    Case("zero-sized-conv", "weights", "a .pth whose conv1.weight is (64, 0, 3, 3)",
         _convert("w.pth", _zero("conv1.weight", (64, 0, 3, 3)), "out.safetensors"),
         "key conv1.weight: zero-sized tensor of shape (64, 0, 3, 3)"),
    Case("msgpack-int-keys", "weights", "a .msgpack with non-string keys ({1: {2: 3}})",
         _convert("w.msgpack", lambda p: p.write_bytes(__import__("msgpack").packb({1: {2: 3}}))),
         "w.msgpack: key 1: expected a string key"),
    Case("pdparams-unknown-keys", "weights", "a .pdparams whose keys are neither Paddle naming",
         _convert("w.pdparams", lambda p: p.write_bytes(__import__("pickle").dumps({"foo": np.zeros(3, np.float32)}))),
         "w.pdparams: holds neither this suite's Paddle names"),
]


def _torch_with(key: str, make: Callable[[np.ndarray], object]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import torch

        state: dict[str, object] = {k: torch.from_numpy(v) for k, v in weights().items()}
        state[key] = make(weights()[key])
        torch.save(state, path)
    return write


def _float8(name: str) -> Callable[[np.ndarray], object]:
    import torch

    return lambda a: torch.from_numpy(a).to(getattr(torch, name))


def _quantized(a: np.ndarray) -> object:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.quantize_per_tensor(torch.from_numpy(a), 0.01, 0, torch.qint8)


CASES += [Case(f"pth-{n}", "weights", f"a .pth tensor of dtype {n}", _convert("w.pth", _torch_with("fc.bias", _float8(n)),
                                                                           "out.safetensors"),
               f"key fc.bias: dtype {n} cannot be converted") for n in ("float8_e4m3fn", "float8_e5m2")]
CASES += [
    Case("pth-quantized", "weights", "a .pth with a quantized (qint8) tensor",
         _convert("w.pth", _torch_with("fc.weight", _quantized), "out.safetensors"),
         "key fc.weight: quantized tensor (torch.qint8) is not supported"),
    Case("pth-sparse", "weights", "a .pth with a sparse tensor",
         _convert("w.pth", _torch_with("fc.weight", lambda a: __import__("torch").from_numpy(a).to_sparse()),
                  "out.safetensors"), "key fc.weight: sparse tensor (torch.sparse_coo) is not supported"),
    Case("pth-wrapper-then-bad", "weights", "a .pth {'state_dict': {'optimizer': {...}}} (the note is dropped)",
         _convert("w.pth", lambda p: __import__("torch").save({"state_dict": {"optimizer": {"lr": 0.1}}}, p),
                  "out.safetensors"), "w.pth: key optimizer: expected a tensor, found dict"),
    Case("pth-unknown-wrapper", "weights", "a .pth holding {'net': state_dict, 'epoch': 3} (no known wrapper)",
         _convert("w.pth", lambda p: __import__("torch").save({"net": {"a": __import__("torch").zeros(1)}, "epoch": 3}, p),
                  "out.safetensors"), "key net: expected a tensor, found dict"),
]


class _RunsCode:
    """Pickles to a call of os.system: what a malicious checkpoint does (the marker must never appear)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


CASES.append(Case("pth-unsafe-pickle", "weights", "a .pth whose pickle calls os.system (torch's refusal, in full)",
                  _convert("w.pth", lambda p: __import__("torch").save({"a": _RunsCode(p.parent / "pwned")}, p),
                           "out.safetensors"), "unsupported GLOBAL posix.system whose module posix is blocked"))


def _forward(write_input: Callable[[Path], None], input_name: str = "x.npy", framework: str = "torch",
             extra: tuple[str, ...] = ()) -> Callable[[Path], tuple[list[str], Path | None]]:
    def build(folder: Path) -> tuple[list[str], Path | None]:
        from resnet_rosetta.common.canonical import save_canonical

        save_canonical(folder / "w.safetensors", base_weights(), SPEC)
        write_input(folder / input_name)
        return ["forward", "--framework", framework, "--weights", str(folder / "w.safetensors"), "--input",
                str(folder / input_name), "--output", str(folder / "y.npy"), *extra], folder / "y.npy"
    return build


CASES += [Case(f"forward-empty-{fw}", "forward input", f"a (2, 3, 0, 0) input batch ({fw})",
               _forward(lambda p: np.save(p, np.zeros((2, 3, 0, 0), np.float32)), framework=fw),
               "x.npy: expected a non-empty batch (every dimension >= 1), found shape (2, 3, 0, 0)")
          for fw in ("torch", "paddle", "flax")]
CASES += [
    Case("forward-npz-input", "forward input", "an .npz file as --input",
         _forward(lambda p: np.savez(p, x=np.zeros((2, 3, 32, 32), np.float32)), "x.npz"),
         "x.npz: expected a .npy array (one NCHW batch), found extension '.npz'"),
    Case("forward-npz-named-npy", "forward input", "an .npz archive renamed to .npy",
         _forward(lambda p: p.write_bytes(_npz_bytes())),
         "x.npy: not a readable .npy array"),
    Case("forward-truncated-huge", "forward input", "a truncated .npy whose header claims a huge shape",
         _forward(lambda p: _huge_header(p)), "x.npy: truncated: shape (99999, 3, 3299, 3299)"),
]


def _npz_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((2, 3, 32, 32), np.float32))
    return buf.getvalue()


def _huge_header(path: Path) -> None:
    """A real .npy header claiming (99999, 3, 3299, 3299) float32 (13 TB), followed by 100 bytes."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (99999, 3, 3299, 3299)})
    path.write_bytes(buf.getvalue() + bytes(100))


def _weights_file(path: Path) -> None:
    from resnet_rosetta.common.canonical import save_canonical

    save_canonical(path, base_weights(), SPEC)


def _dir_dst(dst_name: str) -> Callable[[Path], tuple[list[str], Path | None]]:
    def build(folder: Path) -> tuple[list[str], Path | None]:
        _weights_file(folder / "w.safetensors")
        (folder / dst_name).mkdir()
        return ["convert", str(folder / "w.safetensors"), str(folder / dst_name)], folder / dst_name
    return build


def _under_file(folder: Path) -> tuple[list[str], Path | None]:
    _weights_file(folder / "w.safetensors")
    (folder / "notes.txt").write_text("a file, not a folder")
    return ["convert", str(folder / "w.safetensors"), str(folder / "notes.txt" / "out.pth")], None


def _forward_into_dir(folder: Path) -> tuple[list[str], Path | None]:
    argv, _ = _forward(lambda p: np.save(p, np.zeros((1, 3, 32, 32), np.float32)))(folder)
    (folder / "y.npy").mkdir()
    return argv, folder / "y.npy"


READ_ONLY = Path("/sys/kernel")  # read-only even for root in a container; the test skips where it is not


def _read_only(folder: Path) -> tuple[list[str], Path | None]:
    _weights_file(folder / "w.safetensors")
    return ["convert", str(folder / "w.safetensors"), str(READ_ONLY / "out.pth")], None


CASES += [
    Case("dst-is-directory", "output paths", "convert to a DST that is a directory (out.pth/)", _dir_dst("out.pth"),
         "out.pth: output path is a directory; expected a file name"),
    Case("dst-under-a-file", "output paths", "convert to a DST whose folder is a file", _under_file,
         "notes.txt/out.pth: cannot create the output: "),
    Case("forward-output-directory", "output paths", "forward --output naming a directory", _forward_into_dir,
         "y.npy: output path is a directory"),
    Case("dst-read-only", "output paths", "convert to a DST in a read-only folder", _read_only,
         "out.pth: cannot write the output in /sys/kernel"),
]


def _options(command: list[str], out_flag: str | None, out_name: str) -> Callable[[Path], tuple[list[str], Path | None]]:
    def build(folder: Path) -> tuple[list[str], Path | None]:
        out = folder / out_name
        return [*command, *([out_flag, str(out)] if out_flag else [])], (out if out_flag and "." in out_name else None)
    return build


TRAIN = ["train", "--framework", "torch", "--width", "4", "--image-size", "8", "--epochs", "1"]
BENCH = ["bench", "--frameworks", "torch", "--arch", "resnet18", "--size", "32", "--no-progress"]
for _cmd, _flag, _value, _expect in [
    (TRAIN, "--momentum", "-5", "--momentum must be a finite number in [0, 1), found -5.0"),
    (TRAIN, "--momentum", "nan", "--momentum must be a finite number in [0, 1), found nan"),
    (TRAIN, "--weight-decay", "inf", "--weight-decay must be a finite number in [0, inf), found inf"),
    (TRAIN, "--seed", "-1", "--seed must be at least 0, found -1"),
    (TRAIN, "--lr", "nan", "--lr must be a positive number, found nan"),
    (BENCH, "--mem-limit", "nan", "--mem-limit: expected a finite number in (0, 1e+06], found 'nan'"),
    (BENCH, "--timeout", "nan", "--timeout: expected a finite number in (0, 1e+07], found 'nan'"),
    (BENCH, "--repeat-s", "inf", "--repeat-s: expected a finite number in (0, 86400], found 'inf'"),
    (BENCH, "--threads", "0", "--threads: expected an integer in [1, 4096], found 0"),
    (["parity", "--arch", "resnet18_small"], "--lr", "nan", "--lr: expected a finite number in (0, 10], found 'nan'"),
    (["report", "--frameworks", "torch"], "--budget-min", "0", "--budget-min: expected a finite number in (0, 1e+06], found '0'"),
    (TRAIN, "--batch-size", "many", "argument --batch-size: invalid int value: 'many'"),
]:
    _is_train = _cmd is TRAIN
    CASES.append(Case(f"option-{_cmd[0]}{_flag}={_value}", "options", f"`{_cmd[0]} {_flag} {_value}`",
                      _options([*_cmd, _flag, _value], "--out", "run.safetensors" if _is_train else "results"),
                      _expect))


PARITY_DP = ["parity", "--arch", "resnet18_small", "--batch", "4", "--checks", "eval"]
for _extra, _expect in [
    (["--data-parallel", "0"], "--data-parallel expects N >= 2 replicas, found 0"),
    (["--data-parallel", "1"], "--data-parallel expects N >= 2 replicas, found 1"),
    (["--data-parallel", "3"], "--data-parallel 3 must divide --batch 4 into equal shards"),
    (["--data-parallel", "8"], "--data-parallel 8 must divide --batch 4 into equal shards"),
    (["--data-parallel", "2", "--dp-steps", "0"], "--dp-steps expects K >= 1, found 0"),
    (["--checks", "dp"], "--checks dp needs --data-parallel N"),
    # the batch-norm mode of each engine is its own (parity/dataparallel.py); the one batch-norm option is this
    (["--data-parallel", "2", "--bn-running-var", "sync"], "argument --bn-running-var: invalid choice: 'sync'"),
    (["--data-parallel", "2", "--dp-port", "0"], "--dp-port: expected an integer in [1, 65535], found 0"),
    (["--data-parallel", "2", "--dp-node"], "--dp-node runs one framework's dp check: it needs --data-parallel N"),
    (["--checks", "dp", "--data-parallel", "2", "--dp-node", "--frameworks", "torch"],
     "--dp-node needs --run-dir (a folder every node sees)"),
]:
    CASES.append(Case(f"option-parity{''.join(_extra)}", "options", f"`parity --batch 4 {' '.join(_extra)}`",
                      _options([*PARITY_DP, *_extra], "--json", "p.json"), _expect))
_NODE = ["--checks", "dp", "--data-parallel", "2", "--dp-node", "--frameworks", "torch"]
CASES.append(Case("option-parity-dp-node-without-launcher", "options",
                  f"`parity --batch 4 {' '.join(_NODE)} --run-dir RUN` not started by torchrun",
                  lambda folder: ([*PARITY_DP, *_NODE, "--run-dir", str(folder / "run"), "--json",
                                   str(folder / "p.json")], folder / "p.json"),
                  "--dp-node: WORLD_SIZE is not set; start this command with torchrun"))


@functools.lru_cache(maxsize=None)
def _trained() -> tuple[bytes, bytes]:
    """A real one-epoch training checkpoint pair (tiny), as bytes, made once."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        assert main([*TRAIN, "--batch-size", "64", "--out", f"{d}/run.safetensors"]) == 0
        return Path(f"{d}/run.safetensors").read_bytes(), Path(f"{d}/run.train.safetensors").read_bytes()


def _tampered_resume(**changes: object) -> Callable[[Path], tuple[list[str], Path | None]]:
    def build(folder: Path) -> tuple[list[str], Path | None]:
        from resnet_rosetta.common.atomic import save_safetensors
        from resnet_rosetta.common.canonical import read_safetensors

        ckpt, state = _trained()
        (folder / "run.safetensors").write_bytes(ckpt)
        (folder / "run.train.safetensors").write_bytes(state)
        tensors, meta = read_safetensors(folder / "run.train.safetensors")
        meta["config"] = json.dumps(dict(json.loads(meta["config"]), **changes))
        save_safetensors(folder / "run.train.safetensors", tensors, meta)
        return ["train", "--framework", "torch", "--resume", str(folder / "run.safetensors"), "--epochs", "2"], None
    return build


for _field, _value, _expect in [("batch_size", 0, "stored setting batch_size must be at least 2"),
                                ("lr", "fast", "stored setting lr must be a positive number, found 'fast'"),
                                ("lr_schedule", "warp", "stored setting lr_schedule must be one of cosine, constant"),
                                ("momentum", float("nan"), "stored setting momentum must be a finite number")]:
    CASES.append(Case(f"resume-{_field}-{_value}", "options", f"`train --resume` whose stored {_field} is "
                      f"{json.dumps(_value)}", _tampered_resume(**{_field: _value}), _expect))
