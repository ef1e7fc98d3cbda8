"""timm's ResNets in and out: a timm state dict (.pth or .safetensors) converts without --arch, runs in
all three frameworks with timm's logits, and comes back from another framework's file as a state dict
timm loads strictly, with bit-identical logits. Covers the plain layout (torchvision's names), the
deep stem and average-pool shortcuts of resnet18d / resnet50d, and resnet26d, which is no preset."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.canonical import load_canonical
from peer_helpers import batch, bn_statistics, convert, forward_everywhere

timm = pytest.importorskip("timm")

# (timm name, timm kwargs, the spec name we infer, timm's file format), at widths 8-16-32-64 to stay fast
# (PaddleClas' ResNet50_vd, the same network at full width, is inferred as the preset resnet50d)
NARROW = {"channels": (8, 16, 32, 64), "stem_width": 8}
CASES = [
    ("resnet18", {"channels": (8, 16, 32, 64)}, "resnet_basic_2-2-2-2", ".pth"),
    ("resnet18d", NARROW, "resnet_basic_2-2-2-2_deep_avgdown", ".pth"),
    ("resnet26d", NARROW, "resnet_bottleneck_2-2-2-2_deep_avgdown", ".safetensors"),
    ("resnet50d", NARROW, "resnet_bottleneck_3-4-6-3_deep_avgdown", ".pth"),
]


def timm_peer(name: str, kwargs: dict) -> torch.nn.Module:
    """timm's model of that name, 10 classes, seeded weights and non-trivial BN statistics, in eval mode."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, **kwargs)
    state = model.state_dict()
    bn = [k for k in state if k.rsplit(".", 1)[0] + ".running_var" in state and not k.endswith("tracked")]
    values = bn_statistics(bn, {k: tuple(state[k].shape) for k in bn})
    model.load_state_dict({**state, **{k: torch.from_numpy(v) for k, v in values.items()}})
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs, inferred, ext", CASES, ids=[c[0] for c in CASES])
def test_timm_checkpoint_round_trip(tmp_path: Path, name: str, kwargs: dict, inferred: str, ext: str) -> None:
    peer = timm_peer(name, kwargs)
    x, x_path = batch(tmp_path)
    with torch.no_grad():
        expected = peer(torch.from_numpy(x)).numpy()
    src = tmp_path / f"timm{ext}"
    if ext == ".pth":
        torch.save(peer.state_dict(), src)
    else:
        from safetensors.torch import save_file

        save_file(peer.state_dict(), str(src))
    convert(src, tmp_path / "c.safetensors", as_user=name == "resnet26d")  # once as a user runs it
    _, spec = load_canonical(tmp_path / "c.safetensors")
    assert spec is not None and spec.name == inferred and spec.num_classes == 10
    forward_everywhere(src, x_path, expected, tmp_path)  # timm's file as is
    # back into timm's format from Paddle's file; timm loads it strictly and computes bit-identical logits
    assert main(["convert", str(tmp_path / "c.safetensors"), str(tmp_path / "p.pdparams")]) == 0
    assert main(["convert", str(tmp_path / "p.pdparams"), str(tmp_path / "back.pth"), "--to", "timm"]) == 0
    back = timm.create_model(name, num_classes=10, **kwargs)
    back.load_state_dict(torch.load(tmp_path / "back.pth", weights_only=True), strict=True)
    with torch.no_grad():
        assert np.array_equal(back.eval()(torch.from_numpy(x)).numpy(), expected)


def test_timm_layers_the_spec_cannot_express_are_refused_by_name(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """squeeze-excitation (seresnet) and group norm (resnet50_gn): one line naming the keys, exit 2, nothing written."""
    for name, what in (("seresnet18", r"unexpected keys layer1\.0\.se\.fc1\.bias"),
                       ("resnet50_gn", r"missing keys bn1\.running_mean")):
        torch.save(timm.create_model(name, channels=(32,) * 4, num_classes=3).state_dict(), tmp_path / "m.pth")
        capsys.readouterr()
        assert main(["convert", str(tmp_path / "m.pth"), str(tmp_path / "out.safetensors")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "keys match no ResNet the spec can express" in err, err
        assert re.search(what, err) and not (tmp_path / "out.safetensors").exists()
