"""Training the Paddle ResNet with paddle.optimizer.Momentum + L2Decay; NumPy in, canonical names out.

Paddle fuses L2Decay into its momentum kernel: velocity = mu * velocity + (grad + coeff * param),
param -= lr * velocity, which is torch.optim.SGD's rule with its buffer as Paddle's velocity.
BN running statistics are Paddle parameters with `stop_gradient=True`; only trainable ones are optimised.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import paddle

from resnet_rosetta.common.canonical import Weights
from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.common.training import params_to_canonical, params_to_native
from .adapter import Adapter

_VELOCITY = "{}_velocity_0"  # Paddle's accumulator name for parameter `{param.name}`


class Trainer:
    """Train-mode ResNet + the framework's own SGD: torch.optim.SGD, paddle.optimizer.Momentum, optax."""

    CONVENTION = ("paddle.optimizer.Momentum(learning_rate, momentum, weight_decay=L2Decay(wd), "
                  "use_nesterov=False): velocity = m * velocity + (g + wd * p) for every parameter "
                  "(BN included), p -= lr * velocity")

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], *, lr: float, momentum: float = 0.9,
                 weight_decay: float = 1e-4, device: str = "cpu", record_gates: bool = False,
                 dtype: str = "fp32", adapter: Adapter | None = None) -> None:
        self.spec = spec
        self.adapter = adapter or Adapter(spec, weights, device, dtype)  # or a user's model (parity --model)
        self.model = self.adapter.model
        self.gates: dict[str, np.ndarray] = {}  # ReLU branches of the last forward (record_gates=True)
        if record_gates:
            self.adapter.hook_gates(self.gates)
        self.params = {n: p for n, p in self.model.named_parameters() if not p.stop_gradient}
        self.optimizer = paddle.optimizer.Momentum(
            learning_rate=lr, momentum=momentum, parameters=list(self.params.values()),
            use_nesterov=False, weight_decay=paddle.regularizer.L2Decay(weight_decay))

    def _backward(self, x: np.ndarray, y: np.ndarray) -> float:
        self.model.train()
        self.optimizer.clear_grad(set_to_zero=False)
        logits = self.model(self.adapter.tensor(x))
        loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(np.asarray(y, dtype=np.int64)))
        loss.backward()
        return float(loss.item())

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss = self._backward(x, y)
        grads = {name: p.grad.numpy() for name, p in self.params.items()}
        self.optimizer.clear_grad(set_to_zero=False)
        return loss, params_to_canonical(grads, self.spec, self.adapter.fmt)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss = self._backward(x, y)
        self.optimizer.step()
        return loss

    def set_lr(self, lr: float) -> None:
        """Learning rate for the following steps (for schedules; velocities are unaffected)."""
        self.optimizer.set_lr(lr)

    def canonical_weights(self) -> Weights:
        return self.adapter.canonical_weights()

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """Velocities; zeros before the first step (Paddle creates them lazily)."""
        saved = self.optimizer.state_dict()
        native = {}
        for name, p in self.params.items():
            velocity = saved.get(_VELOCITY.format(p.name))
            native[name] = np.zeros(p.shape, self.adapter.host) if velocity is None else velocity.numpy()
        return params_to_canonical(native, self.spec, self.adapter.fmt)

    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None:
        native = params_to_native(state, self.spec, self.adapter.fmt, "optimizer state", self.adapter.host)
        self.optimizer.set_state_dict({_VELOCITY.format(p.name): paddle.to_tensor(native[name])
                                       for name, p in self.params.items()})

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.forward(x)["logits"]
