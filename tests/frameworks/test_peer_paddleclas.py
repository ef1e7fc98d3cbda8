"""PaddleClas' ResNets in and out: ResNet50 and ResNet50_vd (the same network as timm's resnet50d), built
by PaddleClas' own model file with random weights and non-trivial BN statistics, saved with paddle.save,
convert without --arch (their presets inferred), run in all three frameworks with PaddleClas' logits, and
come back from another framework's file as a .pdparams PaddleClas' model takes with set_state_dict as is,
bit-identical. ResNet18/34 (and _vd), whose first block has a 1x1 conv shortcut, are refused by name."""
from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.canonical import load_canonical
from peer_helpers import CLI, batch, bn_statistics, convert, forward_everywhere, paddleclas_resnet

paddle = pytest.importorskip("paddle")


def paddleclas_peer(factory: str, **kwargs: object) -> object:
    """PaddleClas' model of that name, 10 classes, seeded, non-trivial BN statistics, in eval mode."""
    paddle.seed(0)
    model = getattr(paddleclas_resnet(), factory)(class_num=10, **kwargs)
    state = model.state_dict()
    bn = [k for k in state if ".bn." in k]
    values = bn_statistics(bn, {k: tuple(state[k].shape) for k in bn})
    model.set_state_dict({**state, **{k: paddle.to_tensor(v) for k, v in values.items()}})
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("factory, preset", [("ResNet50_vd", "resnet50d"), ("ResNet50", "resnet50")])
def test_paddleclas_checkpoint_round_trip(tmp_path: Path, factory: str, preset: str) -> None:
    peer = paddleclas_peer(factory)
    x, x_path = batch(tmp_path)
    expected = peer(paddle.to_tensor(x)).numpy()
    paddle.save(peer.state_dict(), str(tmp_path / "peer.pdparams"))
    convert(tmp_path / "peer.pdparams", tmp_path / "c.safetensors", as_user=factory == "ResNet50_vd",
            says="(paddleclas)")  # once as a user runs it
    _, spec = load_canonical(tmp_path / "c.safetensors")
    assert spec is not None and spec.name == preset and spec.num_classes == 10
    forward_everywhere(tmp_path / "peer.pdparams", x_path, expected, tmp_path)  # PaddleClas' file as is
    # back into PaddleClas' format from PyTorch's file
    assert main(["convert", str(tmp_path / "c.safetensors"), str(tmp_path / "t.pth")]) == 0
    assert main(["convert", str(tmp_path / "t.pth"), str(tmp_path / "back.pdparams"), "--to", "paddleclas"]) == 0
    back = getattr(paddleclas_resnet(), factory)(class_num=10)
    missing, unexpected = back.set_state_dict(paddle.load(str(tmp_path / "back.pdparams")))
    assert not missing and not unexpected
    assert np.array_equal(back.eval()(paddle.to_tensor(x)).numpy(), expected)


def test_paddleclas_files_refused(tmp_path: Path) -> None:
    """ResNet18_vd's first-block 1x1 conv shortcut and a non-ResNet backbone: one line, exit 2, nothing written."""
    paddleclas_resnet()  # enters PaddleClas' packages, as for its ResNet
    mobilenet = importlib.import_module("paddleclas.ppcls.arch.backbone.legendary_models.mobilenet_v1")
    for name, model, pattern in [
        ("r18vd", paddleclas_peer("ResNet18_vd"), "a 1x1 conv shortcut where the block's shape does not change "
                                                  "(PaddleClas' use_first_short_conv"),
        ("mobilenet", mobilenet.MobileNetV1(class_num=3), "holds neither this suite's Paddle names"),
    ]:
        paddle.save(model.state_dict(), str(tmp_path / f"{name}.pdparams"))
        done = subprocess.run([*CLI, "convert", str(tmp_path / f"{name}.pdparams"), str(tmp_path / "o.safetensors")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and pattern in done.stderr, \
            done.stderr
        assert not (tmp_path / "o.safetensors").exists()
    # a spec PaddleClas' ResNet cannot hold is refused before anything is written
    assert main(["convert", str(tmp_path / "r18vd.pdparams"), str(tmp_path / "o.pdparams"), "--to", "paddleclas",
                 "--arch", "resnet18"]) == 2


def test_basic_block_nets_go_out_as_paddleclas_without_the_first_shortcut(tmp_path: Path) -> None:
    """A resnet18 written --to paddleclas is PaddleClas' ResNet18 built with use_first_short_conv=False:
    it loads with no missing or unexpected keys and computes what our Paddle model computes."""
    from resnet_rosetta import frameworks
    from resnet_rosetta.common.canonical import random_weights, save_canonical
    from resnet_rosetta.common.spec import get_spec

    spec = get_spec("resnet18").replace(num_classes=10)
    weights = random_weights(spec, seed=3)
    save_canonical(tmp_path / "w.safetensors", weights, spec)
    assert main(["convert", str(tmp_path / "w.safetensors"), str(tmp_path / "c.pdparams"), "--to", "paddleclas"]) == 0
    model = paddleclas_resnet().ResNet18(class_num=10, use_first_short_conv=False)
    missing, unexpected = model.set_state_dict(paddle.load(str(tmp_path / "c.pdparams")))
    assert not missing and not unexpected
    x, _ = batch(tmp_path)
    ours = frameworks.load("paddle").Adapter(spec, weights).forward(x)["logits"]
    assert np.array_equal(model.eval()(paddle.to_tensor(x)).numpy(), ours)
