"""Low-precision parity (`--dtype bf16|fp16`): rounding onto the grid, forward checks in every
framework under the dtype's tolerances, and a wrong port still caught at those tolerances."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flax import linen

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.errors import Unsupported, UserError
from resnet_rosetta.common.precision import representable
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.tolerance import CAP, FLOOR_FACTOR, floor_allowance, tolerance
from resnet_rosetta.parity import engine, report

from broken_ports import SameConv

LOW = ("bf16", "fp16")
TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.mark.parametrize("dtype", LOW)
def test_rounding_matches_the_frameworks_own_cast(dtype: str, rng: np.random.Generator) -> None:
    a = (rng.standard_normal(10_000) * np.exp(rng.uniform(-8, 8, 10_000))).astype(np.float32)
    ties = np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11], np.float32)
    a = np.concatenate([a, ties, -ties])
    expected = torch.from_numpy(a).to(TORCH_DTYPES[dtype]).float().numpy()
    got = representable(a, dtype)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert np.array_equal(representable(got, dtype), got)  # already on the grid: unchanged


def test_fp16_overflow_is_named() -> None:
    with pytest.raises(UserError, match="layer1.0.bn1.running_var: values up to 7e\\+04 exceed the fp16 range"):
        representable(np.array([1.0, 7e4], np.float32), "fp16", "layer1.0.bn1.running_var")


def _comparisons(case: engine.ParityCase, frameworks: tuple[str, ...], checks: tuple[str, ...] = ("eval", "train"),
                 ) -> list[engine.Comparison]:
    reference = engine.oracle_outputs(case, checks)
    floors = engine.conditioning_floors(case, checks, reference)
    results = {engine.ORACLE: reference}
    results.update({fw: engine.framework_outputs(fw, case, checks) for fw in frameworks})
    return engine.compare_participants(case.spec.name, results, case.dtype, floors=floors)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_low_precision_eval_matches_the_oracle_within_the_dtype_policy(arch: str, dtype: str) -> None:
    spec = get_spec(arch).replace(num_classes=100)
    case = engine.ParityCase.seeded(spec, size=64, batch=4, seed=3, dtype=dtype)
    assert np.array_equal(representable(case.x, dtype), case.x)
    assert all(np.array_equal(representable(v, dtype), v) for v in case.weights.values())
    comparisons = _comparisons(case, ("torch", "flax"), ("eval",))
    for c in comparisons:
        assert c.status == "pass", (c.check, c.left, c.right, c.first_divergence)
        assert all(r.tolerance == tolerance("eval", dtype, pairwise=c.right != engine.ORACLE) for r in c.rows)
    # the run really computed in low precision: far above fp32 error, yet within the dtype's policy
    logits = [r for c in comparisons if c.right == engine.ORACLE for r in c.rows if r.quantity == "logits"]
    assert len(logits) == 2 and all(r.max_rel > 20 * tolerance("eval") for r in logits), logits


@pytest.mark.slow
@pytest.mark.parametrize("dtype", LOW)
def test_low_precision_train_mode_is_judged_against_its_conditioning_floor(dtype: str) -> None:
    """resnet18 (structure; quarter widths) in train mode fails nowhere but where the dtype cannot
    check it (30 conditioning floors past CAP: no allowance), and then the run says so; resnet50's
    layer4 moves by half its magnitude when bf16 rounds the inputs, so bf16 cannot check it either."""
    small = get_spec("resnet18").replace(widths=(16, 32, 64, 128), stem_width=16, num_classes=10)
    for c in _comparisons(engine.ParityCase.seeded(small, size=64, batch=4, dtype=dtype), ("torch", "flax"),
                          ("train",)):
        unchecked = [r for r in c.rows if not r.passed and not r.floor_limited]
        assert all(r.floor is not None and floor_allowance(r.floor, engine.tolerance_kind("train", r.quantity),
                                                           pairwise=c.right != engine.ORACLE) == 0.0
                   for r in unchecked), (c.left, c.right, unchecked)
        assert not unchecked or "too ill-conditioned to check at this dtype" in report.terminal([c], {}, {})
    if dtype == "bf16":
        case = engine.ParityCase.seeded(get_spec("resnet50").replace(num_classes=10), size=64, batch=4, dtype=dtype)
        (c,) = [c for c in _comparisons(case, ("torch",), ("train",)) if c.right == engine.ORACLE]
        worst = max(c.rows, key=lambda r: r.floor or 0.0)
        assert c.status == "FAIL" and worst.quantity.startswith("layer") and worst.floor > CAP / FLOOR_FACTOR
        assert "too ill-conditioned to check at this dtype" in report.terminal([c], {}, {})


@pytest.mark.parametrize("right,said", [("paddle", True), (engine.ORACLE, False)])
def test_the_report_says_too_ill_conditioned_exactly_where_the_engine_allows_nothing(right: str, said: bool) -> None:
    """A floor between CAP / (2 FLOOR_FACTOR) and CAP / FLOOR_FACTOR: no allowance between two
    frameworks (twice the floors), an allowance against the oracle (then the error is a plain FAIL)."""
    floor = 0.75 * CAP / FLOOR_FACTOR
    assert (floor_allowance(floor, "eval", pairwise=right != engine.ORACLE) == 0.0) is said
    row = engine.Row("layer4", 1.0, 0.5, tolerance("eval", "bf16"), False, floor, False)
    c = engine.Comparison("resnet18", "eval", "torch", right, rows=[row])
    text = report.terminal([c], {}, {})
    doc = report.to_json([c], {"dtype": "bf16"}, {}, {}, {})
    assert ("too ill-conditioned to check at this dtype" in text) is said
    assert ("too ill-conditioned to check at this dtype" in report.markdown(doc)) is said


def test_paddle_says_when_it_has_no_low_precision_kernels(rng: np.random.Generator) -> None:
    """Paddle 3.3 on CPU registers conv2d for float32 and float64 only: the adapter refuses with a
    one-line reason, and the CLI reports it as unsupported, not as a failure."""
    import paddle

    from resnet_rosetta.frameworks.paddle.adapter import Adapter

    spec = get_spec("resnet18_small").replace(widths=(8, 16, 16, 32))
    case = engine.ParityCase.seeded(spec, size=16, batch=2, dtype="bf16")
    try:
        paddle.nn.functional.conv2d(paddle.ones([1, 1, 3, 3]).astype("bfloat16"),
                                    paddle.ones([1, 1, 1, 1]).astype("bfloat16"))
    except RuntimeError:
        with pytest.raises(Unsupported, match=f"paddle {paddle.__version__} has no bfloat16 conv2d kernel on cpu"):
            Adapter(spec, case.weights, dtype="bf16")
    else:  # a build with the kernels must then pass like the others
        (c,) = _comparisons(case, ("paddle",), ("eval",))
        assert c.status == "pass"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", LOW)
def test_a_wrong_port_still_fails_at_low_precision(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    monkeypatch.setattr(linen, "Conv", SameConv)
    case = engine.ParityCase.seeded(get_spec("resnet18"), size=64, batch=2, dtype=dtype)
    (c,) = _comparisons(case, ("flax",), ("eval",))
    assert c.status == "FAIL" and c.first_divergence.quantity == "stem"


@pytest.mark.slow
def test_cli_bf16_runs_the_forward_checks_and_refuses_gradients(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"
    proc = subprocess.run([sys.executable, "-m", "resnet_rosetta.cli.main", "parity", "--arch", "resnet18_small",
                           "--size", "16", "--batch", "4", "--dtype", "bf16", "--isolate", "--no-proof", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    doc = json.loads(out.read_text())
    assert proc.returncode == (0 if doc["passed"] else 1), proc.stdout + proc.stderr
    assert doc["settings"]["dtype"] == "bf16" and doc["settings"]["checks"] == ["eval", "train"]
    assert {c["check"] for c in doc["checks"]} == {"eval", "train"}
    assert all(c["status"] == "pass" for c in doc["checks"] if c["check"] == "eval")
    assert all(r["tolerance"] == tolerance("eval", "bf16") and r["floor"] > 0 for c in doc["checks"]
               if c["check"] == "eval" and c["right"] == "oracle" for r in c["rows"])
    if "paddle" in doc["unsupported"]:  # travels back from the isolated worker; not an error
        assert not doc["errors"] and "no bfloat16 conv2d kernel" in doc["unsupported"]["paddle"]
        assert "paddle: not run (unsupported, not a failure)" in proc.stdout
    assert main(["parity", "--dtype", "fp16", "--checks", "eval,grad"]) == 2
    assert "--dtype fp16 covers the checks eval,train; grad run in fp32 and fp64 only" in capsys.readouterr().err
