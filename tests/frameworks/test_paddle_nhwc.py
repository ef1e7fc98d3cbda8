"""Paddle's NHWC model (`data_format="NHWC"`, what the benchmarks run for bf16 on a GPU) computes what
the NCHW one does from the same OIHW weights: eval logits, train-mode stages and running statistics."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks.paddle.model import ResNet

SPECS = {"basic": get_spec("resnet18_small").replace(widths=(8, 8, 16, 16), stem_width=8, num_classes=5),
         "bottleneck_d": get_spec("resnet50d").replace(depths=(1, 1, 1, 1), widths=(4, 4, 8, 8), stem_width=8,
                                                       groups=2, num_classes=5)}


@pytest.mark.parametrize("name", SPECS)
def test_nhwc_model_matches_nchw_from_the_same_weights(name: str, rng: np.random.Generator) -> None:
    spec = SPECS[name]
    nchw, nhwc = ResNet(spec), ResNet(spec, data_format="NHWC")
    assert nchw.state_dict().keys() == nhwc.state_dict().keys()
    nhwc.set_state_dict(nchw.state_dict())
    x = rng.standard_normal((4, 3, 64, 64)).astype(np.float32)  # layer4 of the deep stem: 2 x 2 (BN's n = 16)
    for train in (False, True):  # two fp32 computations of one function: the pairwise bounds
        tol = tolerance("train" if train else "eval", pairwise=True)
        for model in (nchw, nhwc):
            model.train() if train else model.eval()
        a = nchw.forward_stages(paddle.to_tensor(x))
        b = nhwc.forward_stages(paddle.to_tensor(x.transpose(0, 2, 3, 1)))
        for stage in ("stem", "layer2", "layer4"):
            got = b[stage].numpy().transpose(0, 3, 1, 2)
            assert compare(got, a[stage].numpy(), 0).max_rel < tol, (train, stage)
        assert compare(b["logits"].numpy(), a["logits"].numpy(), 0).max_rel < tol
    # running statistics after the train-mode forward: the two layouts sum in different orders, and a
    # batch mean near zero over 16,384 values keeps 2.8e-6 of that (a layout bug would be O(1))
    for key, value in nchw.state_dict().items():
        assert compare(nhwc.state_dict()[key].numpy(), value.numpy(), 0).max_rel < tol, key
