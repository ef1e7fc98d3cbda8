"""Training the PyTorch ResNet with torch.optim.SGD; NumPy in, canonical names out."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from resnet_rosetta.common.canonical import Weights
from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.common.training import params_to_canonical, params_to_native
from .adapter import Adapter, to_tensor


class Trainer:
    """Train-mode ResNet + the framework's own SGD: torch.optim.SGD, paddle.optimizer.Momentum, optax."""

    CONVENTION = ("torch.optim.SGD(lr, momentum, weight_decay, dampening=0, nesterov=False): g += wd * p for "
                  "every parameter (BN included), b = m * b + g (b = g on the first step), p -= lr * b")

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], *, lr: float, momentum: float = 0.9,
                 weight_decay: float = 1e-4, device: str = "cpu", record_gates: bool = False,
                 dtype: str = "fp32", adapter: Adapter | None = None) -> None:
        self.spec = spec
        self.adapter = adapter or Adapter(spec, weights, device, dtype)  # or a user's model (parity --model)
        self.model = self.adapter.model
        self.gates: dict[str, np.ndarray] = {}  # ReLU branches of the last forward (record_gates=True)
        if record_gates:
            self.adapter.hook_gates(self.gates)
        self.params = dict(self.model.named_parameters())
        self.optimizer = torch.optim.SGD(self.params.values(), lr=lr, momentum=momentum,
                                         weight_decay=weight_decay, dampening=0.0, nesterov=False)

    def _tensor(self, a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return to_tensor(a, self.adapter.device, dtype)

    def _backward(self, x: np.ndarray, y: np.ndarray) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self._tensor(x, self.adapter.dtype)), self._tensor(y, torch.int64))
        loss.backward()
        return float(loss.detach())

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss = self._backward(x, y)
        grads = {name: p.grad.detach().cpu().numpy() for name, p in self.params.items()}
        self.optimizer.zero_grad(set_to_none=True)
        return loss, params_to_canonical(grads, self.spec, self.adapter.fmt)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss = self._backward(x, y)
        self.optimizer.step()
        return loss

    def set_lr(self, lr: float) -> None:
        """Learning rate for the following steps (for schedules; momentum buffers are unaffected)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def canonical_weights(self) -> Weights:
        return self.adapter.canonical_weights()

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """Momentum buffers; zeros before the first step (torch creates them lazily)."""
        native = {}
        for name, p in self.params.items():
            buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
            native[name] = (torch.zeros_like(p) if buf is None else buf).detach().cpu().numpy().copy()
        return params_to_canonical(native, self.spec, self.adapter.fmt)

    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None:
        native = params_to_native(state, self.spec, self.adapter.fmt, "optimizer state", self.adapter.host)
        for name, p in self.params.items():
            self.optimizer.state[p]["momentum_buffer"] = self._tensor(native[name], p.dtype)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.forward(x)["logits"]
