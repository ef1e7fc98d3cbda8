"""Training the Flax ResNet with optax: one jitted step over functional state (params, batch_stats, opt_state)."""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from resnet_rosetta.common.canonical import Weights
from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.common.training import params_to_canonical, params_to_native
from .adapter import (NATIVE_FORMAT, Adapter, gate_filter, gates_of, gates_to_nchw, in_x64_scope,
                      x64_scope)
from .files import flatten, unflatten


class Trainer:
    """Train-mode ResNet + the framework's own SGD: torch.optim.SGD, paddle.optimizer.Momentum, optax."""

    CONVENTION = ("optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum, nesterov=False)) "
                  "(sgd under inject_hyperparams): g += wd * p for every parameter (BN included), "
                  "trace = m * trace + g, p -= lr * trace")

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], *, lr: float, momentum: float = 0.9,
                 weight_decay: float = 1e-4, device: str = "cpu", record_gates: bool = False,
                 dtype: str = "fp32", adapter: Adapter | None = None) -> None:
        self.spec, self.dtype_name = spec, dtype  # fp64: every method runs inside the adapter's x64_scope
        self.gates: dict[str, np.ndarray] = {}  # ReLU branches of the last forward (record_gates=True)
        self.adapter = adapter or Adapter(spec, weights, device, dtype)  # or a user's model (parity --model)
        self.params = self.adapter.variables["params"]
        self.batch_stats = self.adapter.variables["batch_stats"]
        # inject_hyperparams keeps the learning rate in opt_state, so set_lr changes it without re-jitting.
        tx = optax.chain(optax.add_decayed_weights(weight_decay),
                         optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum, nesterov=False))
        with x64_scope(dtype):  # committed to the device like the params: an uncommitted state would make
            self.opt_state = jax.device_put(tx.init(self.params), self.adapter.device)  # step 2 recompile
        apply_logits = self.adapter.apply_logits

        capture = gate_filter(spec) if record_gates else False

        def loss_fn(params: Any, batch_stats: Any, x: jnp.ndarray, y: jnp.ndarray) -> tuple[jnp.ndarray, Any]:
            """Loss, with (new batch_stats, ReLU gates: empty unless recording) as aux."""
            logits, state = apply_logits({"params": params, "batch_stats": batch_stats}, x, train=True,
                                         mutable=["batch_stats"], capture_intermediates=capture)
            gates = gates_of(spec, state["intermediates"]) if record_gates else {}
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (state["batch_stats"], gates)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def step(params: Any, batch_stats: Any, opt_state: Any, x: jnp.ndarray, y: jnp.ndarray) -> tuple:
            (loss, (batch_stats, gates)), grads = grad_fn(params, batch_stats, x, y)
            updates, opt_state = tx.update(grads, opt_state, params)
            return loss, optax.apply_updates(params, updates), batch_stats, opt_state, gates

        self.tx, self.loss_fn, self.step_fn = tx, loss_fn, step  # for data parallel (parallel.py)
        self._grads = jax.jit(grad_fn)
        self._step = jax.jit(step)

    def _batch(self, x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
        x_nhwc = np.ascontiguousarray(np.transpose(np.asarray(x, dtype=self.adapter.host), (0, 2, 3, 1)))
        return (jax.device_put(x_nhwc, self.adapter.device),
                jax.device_put(np.asarray(y, dtype=np.int32), self.adapter.device))

    @in_x64_scope
    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        (loss, (self.batch_stats, gates)), grads = self._grads(self.params, self.batch_stats, *self._batch(x, y))
        self.gates = gates_to_nchw(gates)
        return float(loss), params_to_canonical(flatten({"params": grads}), self.spec, NATIVE_FORMAT)

    @in_x64_scope
    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, self.params, self.batch_stats, self.opt_state, gates = self._step(
            self.params, self.batch_stats, self.opt_state, *self._batch(x, y))
        self.gates = gates_to_nchw(gates)
        return float(loss)

    @in_x64_scope
    def set_lr(self, lr: float) -> None:
        """Learning rate for the following steps (for schedules; the momentum trace is unaffected)."""
        lr_array = jnp.asarray(lr, optax.tree_utils.tree_get(self.opt_state, "learning_rate").dtype)
        self.opt_state = optax.tree_utils.tree_set(self.opt_state, learning_rate=jax.device_put(lr_array,
                                                                                               self.adapter.device))

    def _sync(self) -> None:
        self.adapter.variables = {"params": self.params, "batch_stats": self.batch_stats}

    @in_x64_scope
    def canonical_weights(self) -> Weights:
        self._sync()
        return self.adapter.canonical_weights()

    @in_x64_scope
    def optimizer_state(self) -> dict[str, np.ndarray]:
        trace = optax.tree_utils.tree_get(self.opt_state, "trace")
        return params_to_canonical(flatten({"params": trace}), self.spec, NATIVE_FORMAT)

    @in_x64_scope
    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None:
        native = params_to_native(state, self.spec, NATIVE_FORMAT, "optimizer state", self.adapter.host)
        trace = jax.device_put(unflatten(native)["params"], self.adapter.device)
        self.opt_state = optax.tree_utils.tree_set(self.opt_state, trace=trace)

    @in_x64_scope
    def predict(self, x: np.ndarray) -> np.ndarray:
        self._sync()
        return self.adapter.forward(x)["logits"]
