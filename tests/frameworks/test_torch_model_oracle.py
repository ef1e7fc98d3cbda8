"""frameworks/torch/model.py against the float64 oracle on two one-block-per-stage nets, in float64 so
that any wiring, stride, padding or batch-norm difference shows far above rounding: eval stages,
a train-mode forward's running statistics (both running-variance rules), gradients, and the init."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.oracle import Oracle
from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.frameworks.torch.model import ResNet

SMALL = ResNetSpec("t_small", "basic", (1, 1), widths=(2, 3), stem="small", stem_width=2, in_channels=2,
                   num_classes=3, input_size=6)
IMNET = ResNetSpec("t_imnet", "bottleneck", (1, 1), widths=(2, 2), groups=2, stem_width=4, in_channels=1,
                   num_classes=2, input_size=9, bn_running_var="biased", bn_momentum=0.25)


def _case(spec: ResNetSpec) -> tuple[ResNet, dict[str, np.ndarray], np.ndarray]:
    weights = random_weights(spec, seed=3, dtype=np.float64)
    model = ResNet(spec).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    x = np.random.default_rng(7).normal(size=(2, spec.in_channels, spec.input_size, spec.input_size))
    return model, weights, x


@pytest.mark.parametrize("spec", [SMALL, IMNET], ids=lambda s: f"{s.name}-{s.bn_running_var}")
def test_torch_model_matches_the_oracle(spec: ResNetSpec) -> None:
    model, weights, x = _case(spec)
    with torch.no_grad():
        got = model.eval().forward_stages(torch.from_numpy(x))
    want = Oracle(spec, weights).forward(x)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name], rtol=1e-10, atol=1e-12, err_msg=name)
    oracle, y = Oracle(spec, weights), np.array([1, 0])
    _, grads = oracle.loss_and_grads(x, y)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    params, state = dict(model.named_parameters()), model.state_dict()
    for key, grad in grads.items():
        np.testing.assert_allclose(params[key].grad.numpy(), grad, rtol=1e-8, atol=1e-12, err_msg=key)
    for key in weights:
        if key.endswith(("running_mean", "running_var")):
            np.testing.assert_allclose(state[key].numpy(), oracle.weights[key], rtol=1e-10, err_msg=key)


def test_torch_init_and_zero_init_residual() -> None:
    torch.manual_seed(0)
    spec = SMALL.replace(widths=(64, 64), zero_init_residual=True)
    model = ResNet(spec).requires_grad_(False)
    conv = model.layer2[0].conv2.weight  # fan_out 64 * 9: Kaiming normal, std sqrt(2 / 576)
    assert abs(conv.std().item() / np.sqrt(2 / 576) - 1) < 0.05
    assert float(model.layer1[0].bn2.weight.abs().sum()) == 0.0 and float(model.layer1[0].bn1.weight.min()) == 1.0
    assert float(ResNet(SMALL).layer1[0].bn2.weight.detach().min()) == 1.0
    bottleneck = ResNet(IMNET.replace(zero_init_residual=True)).layer1[0]
    assert float(bottleneck.bn3.weight.detach().abs().sum()) == 0.0 and float(bottleneck.bn2.weight.detach().min()) == 1.0
    assert model.layer1[0].bn1.eps == spec.bn_eps and model.layer1[0].bn1.momentum == spec.bn_momentum
