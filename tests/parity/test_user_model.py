"""`parity --model FW=module:factory` as a user runs it: small models written the way people write
them (tests/parity/user_models/, on PYTHONPATH or in the working directory) checked beside our
ports. A correct port passes in fp32 and fp64; the catalogue's bugs written into such a model FAIL
in fp64 with the first divergence named in the user's own module names, while our ports pass;
names that fit no layout, and bad --model values (more in tests/cli/bad_cases.py), are one line and exit 2. 16 px, batch 2, one
block per stage at widths 8-16 (the models' own); Flax takes the forward checks only (its training
checks compile for seconds, test_parity_fp64.py runs them on our port).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.parity import usermodel

MODELS = Path(__file__).resolve().parent / "user_models"
CLI = [str(Path(sys.executable).parent / "resnet-rosetta"), "parity"]
SMALL = ["--size", "16", "--grad-size", "16", "--batch", "2", "--steps", "2"]


def _parity(tmp_path: Path, *args: str, cwd: Path | None = None,
            pythonpath: str | None = str(MODELS)) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    out = tmp_path / "p.json"
    proc = subprocess.run(CLI + SMALL + ["--json", str(out), *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd or tmp_path)
    return proc, json.loads(out.read_text()) if out.exists() else {}


def _verdicts(doc: dict) -> dict[tuple[str, str, str], dict]:
    """(check, left, right) -> comparison; a user's model is measured on every quantity ours is."""
    verdicts = {(c["check"], c["left"], c["right"]): c for c in doc["checks"]}
    for (check, left, right), c in verdicts.items():
        ours = next(v for (k, a, b), v in verdicts.items() if k == check and b == "oracle" and not a.startswith("user"))
        assert [r["quantity"].split(" (")[0] for r in c["rows"]] == [r["quantity"].split(" (")[0] for r in ours["rows"]]
    return verdicts


@pytest.mark.slow
def test_a_correct_torch_port_passes_every_check_in_fp32_and_fp64(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--model", "torch=torch_resnet:build", "--frameworks", "torch", "--proof")
    assert proc.returncode == 0 and doc["passed"], proc.stdout + proc.stderr
    for run, checks in ((doc, {"eval", "train", "grad", "step", "steps"}), (doc["float64"], {"eval", "train", "steps"})):
        verdicts = _verdicts(run)
        assert {c for c, left, right in verdicts if (left, right) == ("user-torch", "oracle")} == checks
        assert all(c["passed"] for c in verdicts.values())
    assert doc["settings"]["archs"] == ["resnet_basic_1-1-1-1_small"]  # read off the model's own tensors
    assert "ports proven identical in float64" in proc.stdout and "user-torch" in proc.stdout


@pytest.mark.slow
def test_a_bn_eps_bug_in_a_users_torch_model_fails_in_fp64_named_in_its_modules(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--model", "torch=torch_resnet_eps:build", "--frameworks", "torch",
                        "--checks", "eval,train", "--dtype", "fp64", "--isolate")
    assert proc.returncode == 1 and not doc["passed"], proc.stdout + proc.stderr
    verdicts = _verdicts(doc)
    for pair in (("user-torch", "oracle"), ("torch", "user-torch")):
        bad = verdicts[("eval", *pair)]
        assert not bad["passed"] and bad["first_divergence"]["quantity"] == "layer3 (yours: output of layer3.0)"
    assert verdicts[("eval", "torch", "oracle")]["passed"] and verdicts[("train", "torch", "oracle")]["passed"]
    assert "first divergence: layer3 (yours: output of layer3.0)" in proc.stdout


@pytest.mark.slow
def test_correct_paddle_and_flax_ports_pass_in_fp32_and_fp64(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--model", "paddle=paddle_resnet:build", "--model", "flax=flax_resnet:build",
                        "--frameworks", "paddle", "--checks", "eval,train", "--proof", "--bn-running-var", "biased")
    assert proc.returncode == 0 and doc["passed"], proc.stdout + proc.stderr
    for run in (doc, doc["float64"]):
        pairs = {(left, right) for _, left, right in _verdicts(run)}
        assert {("user-paddle", "oracle"), ("user-flax", "oracle"), ("user-paddle", "user-flax")} <= pairs
        assert all(c["passed"] for c in run["checks"])


@pytest.mark.slow
def test_catalogue_bugs_in_users_paddle_and_flax_models_fail_in_fp64_where_they_are(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--model", "paddle=paddle_resnet_momentum:build",
                        "--model", "flax=flax_resnet_same:build", "--frameworks", "paddle", "--checks", "eval,train",
                        "--dtype", "fp64", "--bn-running-var", "biased")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = _verdicts(doc)
    momentum = verdicts[("train", "user-paddle", "oracle")]  # BN momentum 0.1 passed as Paddle's
    assert verdicts[("eval", "user-paddle", "oracle")]["passed"] and not momentum["passed"]
    assert momentum["first_divergence"]["quantity"] == "bn1.running_mean (yours: bn1._mean)"
    same = verdicts[("eval", "user-flax", "oracle")]  # 'SAME' pads (0, 1) at stride 2: layer2 is the first
    assert same["first_divergence"]["quantity"] == "layer2 (yours: output of layer2_0)"
    assert all(verdicts[(c, "paddle", "oracle")]["passed"] for c in ("eval", "train"))


@pytest.mark.slow
def test_a_model_whose_names_fit_no_layout_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--model", "torch=torch_resnet_renamed:build", cwd=MODELS, pythonpath=None)
    assert proc.returncode == 2 and not doc and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "resnet-rosetta parity: error: --model torch=torch_resnet_renamed:build: keys match no ResNet the spec can "
        "express (torch names, 1-1-1-1 blocks): unexpected keys head.bias, head.weight; missing keys fc.bias, "
        "fc.weight"]


@pytest.mark.parametrize("spec, message", [
    ("torch=mine:no_factory", "mine has no callable 'no_factory'"),
    ("torch=mine:raises", "--model torch=mine:raises: the factory raised RuntimeError: no weights file here"),
    ("torch=mine:not_a_model", "the factory did not return a model (expected a torch.nn.Module, found object)"),
])
def test_a_bad_model_option_is_one_line_and_exit_2(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "mine.py").write_text("def raises():\n    raise RuntimeError('no weights file here')\n\n\n"
                                      "def not_a_model():\n    return object()\n")
    proc, doc = _parity(tmp_path, "--model", spec, "--checks", "eval", pythonpath=None)
    assert proc.returncode == 2 and not doc and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_a_users_names_are_the_layouts_own(tmp_path: Path) -> None:
    spec = get_spec("resnet50").replace(depths=(1, 1, 1, 1))
    classic = usermodel.UserModel("paddle", "m", "f", (str(tmp_path),), fmt="paddle")
    assert usermodel.yours("layer3.0.bn1.running_mean", classic, spec) == \
        "layer3.0.bn1.running_mean (yours: bb_2_0.conv0._batch_norm._mean)"
    assert usermodel.yours("layer2", classic, spec) == "layer2 (yours: output of bb_1_0)"
    assert usermodel.yours("step2.params (worst: fc.weight)", classic, spec).endswith("(yours: out.weight)")
    torch = usermodel.UserModel("torch", "m", "f", (str(tmp_path),), fmt="torch")
    assert usermodel.yours("layer1.0.conv1.weight", torch, spec) == "layer1.0.conv1.weight"  # same names
    (tmp_path / "named.py").write_text("def build(name):\n    return name\n\ndef plain(widths=8):\n    return widths\n")
    assert usermodel.takes_name(usermodel.parse("torch=named:build", str(tmp_path)))
    assert not usermodel.takes_name(usermodel.parse("torch=named:plain", str(tmp_path)))
    with pytest.raises(UserError, match="one user model per framework"):
        from resnet_rosetta.parity.run import Settings
        Settings(models=(classic, classic)).validated()


def test_a_factory_that_takes_a_name_is_given_each_preset_and_must_build_it(tmp_path: Path) -> None:
    (tmp_path / "named_factory.py").write_text("from torch_resnet import ResNet\n\n\ndef build(name):\n"
                                       "    return ResNet(num_classes=1000 if name == 'resnet18' else 10)\n")
    user = usermodel.parse("torch=named_factory:build", str(tmp_path))
    user = usermodel.UserModel(user.framework, user.module, user.factory, (*user.path, str(MODELS)))
    found = usermodel.describe(dict(vars(user)), ["resnet18", "resnet34"])["shapes"]
    assert list(found) == ["resnet18", "resnet34"] and found["resnet18"]["fc.weight"] == [1000, 16]
    with pytest.raises(UserError, match=r"^--model torch=named_factory:build: .*resnet18.*$"):  # widths 8-16
        usermodel.fit((user,), None, ("resnet18",), False, {}, 60)


def test_long_participant_names_keep_the_terminal_tables_columns() -> None:
    """`user-flax vs user-torch` is longer than the pair column's 18 characters: the column widens."""
    from resnet_rosetta.parity import engine, report
    rows = [engine.Row(q, 1e-7, 1e-7, 1e-5, True) for q in ("stem", "layer1", "logits")]
    pairs = [("torch", "oracle"), ("user-flax", "oracle"), ("user-flax", "user-torch")]
    comparisons = [engine.Comparison("r", "eval", a, b, rows=list(rows)) for a, b in pairs]
    header, *lines = report.terminal(comparisons, {}, {}).strip().splitlines()[1:4 + 1]
    assert len(lines) == 3 and all(line.index("PASS") == header.index("result") for line in lines), [header, *lines]
    assert all(line.index("1.00e-07") == lines[0].index("1.00e-07") for line in lines)
