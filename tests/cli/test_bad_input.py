"""Bad input: one-line error naming file, key and expected vs found; exit 2; no partial or clobbered output."""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from resnet_rosetta.cli.main import main
from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.pdparams import write_pdparams
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks.flax.files import write_native as write_msgpack

SPEC = get_spec("resnet18_small")
PRECIOUS = b"an earlier good result"


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return random_weights(SPEC, seed=0)


def _torch_file(path: Path, state: dict[str, np.ndarray]) -> None:
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)


def _convert_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str], src: Path, *extra: str,
                   dst_name: str = "out.pt") -> str:
    """Run a convert that must fail; check exit code, one-line message, and the untouched output file."""
    dst = tmp_path / dst_name
    dst.write_bytes(PRECIOUS)
    before = set(os.listdir(tmp_path))
    assert main(["convert", str(src), str(dst), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert dst.read_bytes() == PRECIOUS
    assert set(os.listdir(tmp_path)) == before  # no temp files left behind
    return err


def test_wrong_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            weights: dict[str, np.ndarray]) -> None:
    save_canonical(tmp_path / "w.safetensors", weights, SPEC)
    err = _convert_fails(tmp_path, capsys, tmp_path / "w.safetensors", "--arch", "resnet50")
    assert "checkpoint is resnet18_small, but --arch says resnet50" in err
    _torch_file(tmp_path / "w.pth", rules.to_native(weights, SPEC, "torch"))
    err = _convert_fails(tmp_path, capsys, tmp_path / "w.pth", "--arch", "resnet34")
    assert "do not match resnet34" in err and "missing keys layer1.2.conv1.weight" in err


def test_missing_and_unexpected_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     weights: dict[str, np.ndarray]) -> None:
    native = rules.to_native(weights, SPEC, "torch")
    del native["layer2.0.bn1.running_var"]
    native["head.extra"] = np.zeros(3, np.float32)
    _torch_file(tmp_path / "w.pth", native)
    err = _convert_fails(tmp_path, capsys, tmp_path / "w.pth", "--arch", "resnet18_small")
    assert "w.pth" in err and "missing keys layer2.0.bn1.running_var" in err and "unexpected keys head.extra" in err


def test_shape_mismatch_names_key_expected_and_found(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    weights: dict[str, np.ndarray]) -> None:
    native = rules.to_native(weights, SPEC, "paddle")
    native["bb_1_0.conv0._conv.weight"] = np.zeros((128, 64, 3, 2), np.float32)
    write_pdparams(tmp_path / "w.pdparams", native)
    err = _convert_fails(tmp_path, capsys, tmp_path / "w.pdparams", "--arch", "resnet18_small")
    assert "key bb_1_0.conv0._conv.weight: expected shape (128, 64, 3, 3), found (128, 64, 3, 2)" in err


def test_unsupported_dtype(tmp_path: Path, capsys: pytest.CaptureFixture[str], weights: dict[str, np.ndarray]) -> None:
    bad = dict(weights, **{"fc.bias": weights["fc.bias"].astype(np.int32)})
    save_file(bad, str(tmp_path / "w.safetensors"))
    err = _convert_fails(tmp_path, capsys, tmp_path / "w.safetensors", "--arch", "resnet18_small")
    assert "key fc.bias: unsupported dtype int32" in err


def test_non_finite_values(tmp_path: Path, capsys: pytest.CaptureFixture[str], weights: dict[str, np.ndarray]) -> None:
    bad = dict(weights)
    bad["layer1.1.conv2.weight"] = bad["layer1.1.conv2.weight"].copy()
    bad["layer1.1.conv2.weight"][0, 0, 0, 0] = np.nan
    _torch_file(tmp_path / "w.pth", rules.to_native(bad, SPEC, "torch"))
    err = _convert_fails(tmp_path, capsys, tmp_path / "w.pth", dst_name="out.safetensors")
    assert "key layer1.1.conv2.weight: contains non-finite values" in err


WRITERS: dict[str, Callable[[Path, dict[str, np.ndarray]], None]] = {
    "w.safetensors": lambda p, w: save_canonical(p, w, SPEC),
    "w.pth": lambda p, w: _torch_file(p, rules.to_native(w, SPEC, "torch")),
    "w.pdparams": lambda p, w: write_pdparams(p, rules.to_native(w, SPEC, "paddle")),
    "w.msgpack": lambda p, w: write_msgpack(p, rules.to_native(w, SPEC, "flax")),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_truncated_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                        weights: dict[str, np.ndarray]) -> None:
    path = tmp_path / name
    WRITERS[name](path, weights)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    err = _convert_fails(tmp_path, capsys, path, dst_name="out.msgpack")
    assert name in err


def test_unknown_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str], weights: dict[str, np.ndarray]) -> None:
    save_canonical(tmp_path / "w.safetensors", weights, SPEC)
    assert main(["convert", str(tmp_path / "w.safetensors"), str(tmp_path / "out.bin")]) == 2
    assert "out.bin: unknown extension '.bin'" in capsys.readouterr().err
    assert not (tmp_path / "out.bin").exists()


def test_missing_source_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(tmp_path / "nope.pth"), str(tmp_path / "out.pt")]) == 2
    assert "nope.pth: no such file" in capsys.readouterr().err


class _RunsCode:
    """Pickles to a call of os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pdparams_is_refused_without_running_code(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            weights: dict[str, np.ndarray]) -> None:
    marker = tmp_path / "pwned"
    payload = dict(rules.to_native(weights, SPEC, "paddle"))
    payload["conv._conv.weight"] = _RunsCode(marker)  # type: ignore[assignment]
    (tmp_path / "evil.pdparams").write_bytes(pickle.dumps(payload, protocol=4))
    err = _convert_fails(tmp_path, capsys, tmp_path / "evil.pdparams")
    assert "refused to load global posix.system" in err or "refused to load global os.system" in err
    assert not marker.exists()


def test_malicious_torch_file_is_refused_without_running_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pth").write_bytes(b"")
    torch.save({"conv1.weight": _RunsCode(marker)}, tmp_path / "evil.pth")
    err = _convert_fails(tmp_path, capsys, tmp_path / "evil.pth")
    assert "evil.pth: not a loadable torch state_dict" in err
    assert not marker.exists()


def test_forward_rejects_an_input_with_the_wrong_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          weights: dict[str, np.ndarray]) -> None:
    save_canonical(tmp_path / "w.safetensors", weights, SPEC)
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 32, 32), np.float32))
    rc = main(["forward", "--framework", "torch", "--weights", str(tmp_path / "w.safetensors"),
               "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")])
    assert rc == 2
    assert "x.npy: expected an NCHW batch with 3 channels, found shape (2, 1, 32, 32)" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()
