"""Lossless weight porting: rule-table round trips, framework round trips, and file-format chains."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from resnet_rosetta import frameworks
from resnet_rosetta.cli.main import main
from resnet_rosetta.frameworks.weights import read_weights
from resnet_rosetta.common import inference, rules
from resnet_rosetta.common.canonical import load_canonical, random_weights, save_canonical
from resnet_rosetta.common.spec import PRESETS, get_spec

NATIVE = ["torch", "paddle", "paddle-vision", "flax"]


@pytest.mark.parametrize("name", PRESETS.names())
def test_rule_table_round_trip_is_bit_identical_for_every_preset(name: str) -> None:
    spec = get_spec(name)
    weights = random_weights(spec, seed=1)
    for fmt in NATIVE:
        native = rules.to_native(weights, spec, fmt)
        assert len(native) == len(weights)
        back = rules.from_native(native, spec, fmt, fmt)
        assert list(back) == list(weights)
        for key, arr in weights.items():
            assert back[key].dtype == arr.dtype and np.array_equal(back[key], arr), (fmt, key)


@pytest.mark.parametrize("name", ["resnet18", "resnext50_32x4d", "resnet50_small"])
def test_framework_round_trip_is_bit_identical(name: str, framework: str) -> None:
    spec = get_spec(name)
    weights = random_weights(spec, seed=2)
    back = frameworks.load(framework).Adapter(spec, weights).canonical_weights()
    assert all(np.array_equal(back[k], weights[k]) for k in weights)


def test_torchvision_pth_through_paddle_and_flax_back_to_pth_is_bit_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = torchvision.models.resnet50(weights=None).state_dict()
    for key, value in original.items():  # non-trivial BN statistics
        if key.endswith(("running_mean", "running_var")):
            value.uniform_(0.5, 1.5)
    torch.save(original, tmp_path / "tv.pth")
    chain = ["tv.pth", "a.pdparams", "b.msgpack", "c.safetensors", "d.pdparams", "back.pth"]
    for src, dst in zip(chain, chain[1:]):
        assert main(["convert", str(tmp_path / src), str(tmp_path / dst)]) == 0  # arch inferred every time
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert list(back) == list(original)
    for key, value in original.items():
        # num_batches_tracked is not canonical: written back as 0, which a fresh torchvision model has too
        assert torch.equal(back[key], value), key
    torchvision.models.resnet50(weights=None).load_state_dict(back, strict=True)


def test_paddle_vision_flavour_loads_into_paddle_vision_as_is(tmp_path: Path) -> None:
    import paddle
    from paddle.vision.models import resnet18

    spec = get_spec("resnet18")
    weights = random_weights(spec, seed=4)
    save_canonical(tmp_path / "w.safetensors", weights, spec)
    assert main(["convert", str(tmp_path / "w.safetensors"), str(tmp_path / "pv.pdparams", ), "--to",
                 "paddle-vision"]) == 0
    model = resnet18()
    missing, unexpected = model.set_state_dict(paddle.load(str(tmp_path / "pv.pdparams")))
    assert not missing and not unexpected
    assert np.array_equal(model.fc.weight.numpy(), weights["fc.weight"].T)
    assert np.array_equal(model.layer3[0].bn1._variance.numpy(), weights["layer3.0.bn1.running_var"])
    # and a paddle.vision file is recognised by its keys on the way back
    back, back_spec, fmt = read_weights(tmp_path / "pv.pdparams")
    assert fmt == "paddle-vision" and back_spec.name == "resnet18"
    assert all(np.array_equal(back[k], weights[k]) for k in weights)


def test_paddle_save_files_are_read_without_paddle_pickle(tmp_path: Path) -> None:
    """A real `paddle.save` file (with its StructuredToParameterName@@ table) goes through the restricted reader."""
    import paddle

    from resnet_rosetta.frameworks.paddle.model import ResNet

    spec = get_spec("resnet18")
    model = ResNet(spec)
    paddle.save(model.state_dict(), str(tmp_path / "native.pdparams"))
    weights, read_spec, fmt = read_weights(tmp_path / "native.pdparams")
    assert fmt == "paddle" and read_spec == spec
    assert np.array_equal(weights["fc.weight"], model.out.weight.numpy().T)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_dtype_is_preserved_through_every_format(tmp_path: Path, dtype: type) -> None:
    spec = get_spec("resnet18_small")
    weights = random_weights(spec, seed=5, dtype=dtype)
    save_canonical(tmp_path / "w.safetensors", weights, spec)
    chain = ["w.safetensors", "w.pth", "w.pdparams", "w.msgpack", "back.safetensors"]
    for src, dst in zip(chain, chain[1:]):
        assert main(["convert", str(tmp_path / src), str(tmp_path / dst), "--arch", "resnet18_small"]) == 0
    back, back_spec = load_canonical(tmp_path / "back.safetensors")
    assert back_spec == spec
    assert all(back[k].dtype == dtype and np.array_equal(back[k], weights[k]) for k in weights)


def test_architecture_is_inferred_from_keys_and_shapes() -> None:
    for name in ["resnet34", "resnet50_small", "wide_resnet50_2"]:
        spec = get_spec(name).replace(num_classes=7, in_channels=1)
        native = rules.to_native(random_weights(spec), spec, "flax")
        assert inference.infer_spec(native, "flax", "probe") == spec


# Independent references: what each native format holds for a canonical (torchvision) tensor, written out
# index by index rather than with the rule table's transposes.
def _hand_built(key: str, a: np.ndarray, fmt: str) -> np.ndarray:
    """The native tensor for canonical `a`, element by element: a Flax conv kernel is HWIO
    (k[h, w, i, o] = a[o, i, h, w]); a Paddle or Flax classifier is [in, out] (m[i, o] = a[o, i])."""
    if a.ndim == 4 and fmt == "flax":
        out = np.empty((a.shape[2], a.shape[3], a.shape[1], a.shape[0]), a.dtype)
        for o, i, h, w in np.ndindex(*a.shape):
            out[h, w, i, o] = a[o, i, h, w]
        return out
    if key == "fc.weight" and fmt != "torch":
        out = np.empty(a.shape[::-1], a.dtype)
        for o, i in np.ndindex(*a.shape):
            out[i, o] = a[o, i]
        return out
    return a


@pytest.mark.parametrize("fmt", NATIVE)
def test_every_rule_matches_a_hand_built_array(fmt: str) -> None:
    spec = get_spec("resnet18").replace(depths=(1, 1, 1, 1), widths=(4, 8, 8, 16), stem_width=4, num_classes=6)
    weights = {k: np.arange(v.size, dtype=np.float32).reshape(v.shape) + 0.5
               for k, v in random_weights(spec, seed=3).items()}
    table, native = rules.key_map(spec, fmt), rules.to_native(weights, spec, fmt)
    for key, a in weights.items():
        expected = _hand_built(key, a, fmt)
        got = native[table[key][0]]
        assert got.shape == expected.shape and np.array_equal(got, expected), (fmt, key)


def _torchvision_peer(num_classes: int = 10) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    """torchvision's own ResNet-18 layout (one block per stage), random weights, non-trivial BN statistics."""
    from torchvision.models.resnet import BasicBlock, ResNet

    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if name.endswith("running_mean"):
                value.uniform_(-0.5, 0.5)
            elif name.endswith(("running_var", ".weight")) and value.ndim == 1:
                value.uniform_(0.5, 1.5)
            elif name.endswith(".bias") and value.ndim == 1:
                value.uniform_(-0.2, 0.2)
    weights = {k: v.numpy().copy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    return model.eval(), weights


@pytest.mark.slow
def test_ports_give_the_torchvision_peers_logits(framework: str) -> None:
    """torchvision's state dict, converted by the rules into each framework, gives torchvision's own logits."""
    from resnet_rosetta.common.tolerance import compare, tolerance

    peer, weights = _torchvision_peer()
    spec = get_spec("resnet18").replace(depths=(1, 1, 1, 1), num_classes=10, input_size=32)
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = peer(torch.from_numpy(x)).numpy()
    logits = frameworks.load(framework).Adapter(spec, weights).forward(x)["logits"]
    assert compare(logits, expected, 0).max_rel < tolerance("eval", pairwise=True)


@pytest.mark.slow
def test_paddle_vision_peer_converts_to_its_own_logits() -> None:
    """paddle.vision's ResNet-18 state dict, read through the paddle-vision rules, gives its logits in torch."""
    import paddle
    from paddle.vision.models import resnet18

    from resnet_rosetta.common.tolerance import compare, tolerance

    paddle.seed(0)
    peer = resnet18(num_classes=10)
    for name, value in peer.state_dict().items():
        if name.endswith(("_mean", "_variance")):
            value.set_value(np.random.default_rng(len(name)).uniform(0.5, 1.5, value.shape).astype(np.float32))
    peer.eval()
    spec = get_spec("resnet18").replace(num_classes=10, input_size=32)
    weights = rules.from_native({k: v.numpy() for k, v in peer.state_dict().items()}, spec, "paddle-vision", "peer")
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    expected = peer(paddle.to_tensor(x)).numpy()
    logits = frameworks.load("torch").Adapter(spec, weights).forward(x)["logits"]
    assert compare(logits, expected, 0).max_rel < tolerance("eval", pairwise=True)
