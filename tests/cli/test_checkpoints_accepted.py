"""Real checkpoints are accepted: training-script wrappers and a DDP prefix taken off with a one-line note,
bf16 (widened to fp32 exactly) and fp16 (kept) weights converted and run in every framework; torch's own
refusal of an unsafe pickle shown in full on one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.canonical import load_canonical
from resnet_rosetta.frameworks.weights import read_weights

from bad_cases import SPEC, ANSI, raw_safetensors, weights

WRAPPED = {
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 3},
    "model": lambda sd: {"model": sd},
    "model_state_dict": lambda sd: {"model_state_dict": sd, "optimizer": {"state": {}, "param_groups": []}},
    "state_dict_ema": lambda sd: {"state_dict_ema": sd, "arch": "resnet18"},
    "ema": lambda sd: {"ema": sd},
    "module.": lambda sd: {f"module.{k}": v for k, v in sd.items()},
    "model+module.": lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
}


@pytest.mark.parametrize("wrapper", list(WRAPPED))
def test_wrapped_checkpoint_is_unwrapped_with_a_note(wrapper: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    sd = {k: torch.from_numpy(v) for k, v in weights().items()}
    torch.save(WRAPPED[wrapper](sd), tmp_path / "w.pth")
    assert main(["convert", str(tmp_path / "w.pth"), str(tmp_path / "out.safetensors")]) == 0
    err = capsys.readouterr().err
    for taken in wrapper.split("+"):
        assert (f"took the state dict under {taken!r}" if taken != "module." else "took the DDP prefix 'module.'") in err
    got, spec = load_canonical(tmp_path / "out.safetensors")
    assert spec == SPEC and all(np.array_equal(got[k], v) for k, v in weights().items())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_pth_converts_and_runs_in_every_framework(dtype: str, framework: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    half = {k: torch.from_numpy(v).to(getattr(torch, dtype)) for k, v in weights().items()}
    torch.save(half, tmp_path / "w.pth")
    exact = {k: v.float().numpy() for k, v in half.items()}  # the values the file holds, in fp32
    torch.save({k: torch.from_numpy(v) for k, v in exact.items()}, tmp_path / "w32.pth")
    read, _, _ = read_weights(tmp_path / "w.pth")
    assert read["fc.weight"].dtype == (np.float32 if dtype == "bfloat16" else np.float16)  # fp16 kept
    assert all(np.array_equal(read[k].astype(np.float32), v) for k, v in exact.items())
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    for name in ("w", "w32"):
        assert main(["forward", "--framework", framework, "--weights", str(tmp_path / f"{name}.pth"),
                     "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / f"{name}.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "w.npy"), np.load(tmp_path / "w32.npy"))  # computed in fp32
    if dtype == "bfloat16":
        assert "bfloat16 tensors widened to float32" in capsys.readouterr().err


def test_bf16_safetensors_is_widened_exactly(tmp_path: Path) -> None:
    bits = (np.arange(10, dtype=np.uint32) * 0x00410000 + 0x3F800000).astype(np.uint32)  # 1.0, 1.5078..., ...
    ws = {k: v for k, v in weights().items() if k != "fc.bias"}
    extra = {"fc.bias": ("BF16", (10,), (bits >> 16).astype("<u2").tobytes())}
    codes = {k: ("F32", v.shape, v.tobytes()) for k, v in ws.items()}
    raw_safetensors(tmp_path / "w.safetensors", {**codes, **extra}, {"spec": SPEC.to_json()})
    read, _, _ = read_weights(tmp_path / "w.safetensors")
    assert read["fc.bias"].dtype == np.float32 and np.array_equal(read["fc.bias"], bits.view(np.float32))


def test_torch_refusal_is_shown_in_full_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    long = "\x1b[1mWeights only load failed.\x1b[0m\n" + "Context. " * 40 + "\nunsupported GLOBAL posix.system here"
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(RuntimeError(long)))
    (tmp_path / "w.pth").write_bytes(b"x")
    assert main(["convert", str(tmp_path / "w.pth"), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not ANSI.search(err)
    assert "Weights only load failed." in err and err.endswith("unsupported GLOBAL posix.system here)")


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_evaluate_in_paddle_casts_half_and_double_weights(dtype: type, tmp_path: Path) -> None:
    from resnet_rosetta.common.canonical import random_weights, save_canonical

    spec = SPEC.replace(widths=(4, 8, 16, 32), in_channels=1, input_size=8)
    ws = {k: v.astype(dtype) for k, v in random_weights(spec, seed=1).items()}
    save_canonical(tmp_path / "w.safetensors", ws, spec)
    save_canonical(tmp_path / "w32.safetensors", {k: v.astype(np.float32) for k, v in ws.items()}, spec)
    for name in ("w", "w32"):
        assert main(["evaluate", "--framework", "paddle", "--weights", str(tmp_path / f"{name}.safetensors"),
                     "--out", str(tmp_path / f"eval-{name}")]) == 0
    assert np.array_equal(np.load(tmp_path / "eval-w.logits.npy"), np.load(tmp_path / "eval-w32.logits.npy"))
