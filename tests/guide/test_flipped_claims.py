"""The guide's tests fail when a claim is false: each test below reads its expectation from its module's
`CLAIMS`; here one expectation at a time is flipped to the false value (often the claim the guide used to
make) and the test must then fail. Cheap: pure tests with small inputs, run in-process."""
from __future__ import annotations

import copy
import importlib
from typing import Any

import pytest

from resnet_rosetta.frameworks import FRAMEWORKS

from test_naming import CLAIMED_NAMES

# (test module, test, path into CLAIMS, false value, test arguments)
FLIPS: list[tuple[str, str, tuple[str, ...], Any, dict[str, Any]]] = [
    ("test_batchnorm", "test_bn_momentum_meaning", ("new_batch_weight", "torch"), 0.75, {"framework": "torch"}),
    ("test_batchnorm", "test_bn_momentum_meaning", ("new_batch_weight", "paddle"), 0.25, {"framework": "paddle"}),
    ("test_batchnorm", "test_bn_momentum_meaning", ("new_batch_weight", "flax"), 0.25, {"framework": "flax"}),
    ("test_batchnorm", "test_bn_defaults", ("default_momentum", "torch"), 0.9, {}),
    ("test_batchnorm", "test_bn_defaults", ("default_momentum", "paddle"), 0.1, {}),
    ("test_batchnorm", "test_bn_defaults", ("default_momentum", "flax"), 0.9, {}),
    ("test_batchnorm", "test_native_running_var_rule", ("running_var_ddof", "torch"), 0, {"framework": "torch"}),
    ("test_batchnorm", "test_native_running_var_rule", ("running_var_ddof", "paddle"), 1, {"framework": "paddle"}),
    ("test_batchnorm", "test_native_running_var_rule", ("running_var_ddof", "flax"), 1, {"framework": "flax"}),
    ("test_padding", "test_default_padding", ("default_output", "torch"), 8, {}),
    ("test_padding", "test_default_padding", ("default_output", "paddle"), 8, {}),
    ("test_padding", "test_default_padding", ("default_output", "flax"), 6, {}),
    ("test_optimizer", "test_optax_chain_order_matters", ("decay_after_sgd",), 0.95, {}),  # the old "p -= wd p"
    ("test_mixed_precision", "test_bf16_stored_mantissa_bits", ("bf16_stored_mantissa_bits",), 8, {}),
    ("test_randomness", "test_dropout_mask_source", ("mask_independent_of_other_draws", "torch"), True,
     {"framework": "torch"}),
    ("test_randomness", "test_dropout_mask_source", ("mask_independent_of_other_draws", "paddle"), True,
     {"framework": "paddle"}),
    ("test_randomness", "test_dropout_mask_source", ("mask_independent_of_other_draws", "flax"), False,
     {"framework": "flax"}),
    ("test_randomness", "test_dropout_scaling", ("kept_scale", "torch"), 1.0, {"framework": "torch"}),
    ("test_randomness", "test_dropout_scaling", ("kept_scale", "paddle"), 1.0, {"framework": "paddle"}),
    ("test_randomness", "test_dropout_scaling", ("kept_scale", "flax"), 1.0, {"framework": "flax"}),
    ("test_init", "test_grouped_conv_init", ("grouped_fan_ignores_groups", "torch"), False, {"framework": "torch"}),
    ("test_init", "test_grouped_conv_init", ("grouped_fan_ignores_groups", "paddle"), False, {"framework": "paddle"}),
    ("test_init", "test_grouped_conv_init", ("grouped_fan_ignores_groups", "flax"), False, {"framework": "flax"}),
    ("test_naming", "test_native_names", ("num_batches_tracked", "torch"), False, {"framework": "torch"}),
    ("test_naming", "test_native_names", ("num_batches_tracked", "paddle"), True, {"framework": "paddle"}),
    ("test_naming", "test_native_names", ("num_batches_tracked", "flax"), True, {"framework": "flax"}),
    ("test_tf32", "test_torch_fp32_precision_api", ("torch_fp32_precision",), ["none", "tf32", "read"], {}),
    ("test_no_grad", "test_detach", ("cut_factor_is_constant", "torch"), False, {"framework": "torch"}),
    ("test_no_grad", "test_detach", ("cut_factor_is_constant", "paddle"), False, {"framework": "paddle"}),
    ("test_no_grad", "test_detach", ("cut_factor_is_constant", "flax"), False, {"framework": "flax"}),
    ("test_no_grad", "test_new_tensor_defaults", ("paddle_data_stop_gradient",), False, {}),
    ("test_memory_format", "test_boundary_transposes", ("paddle_transpose_is_a_view",), False, {}),
]
FLIPS += [(module, test, (key, fw), false, {"framework": fw}) for fw in FRAMEWORKS
          for module, test, key, false in [
              ("test_init", "test_conv_init_scale", "conv_fan", "fan_in" if fw != "paddle" else "fan_out"),
              ("test_init", "test_classifier_init", "classifier_bias_zero", fw == "torch"),
              ("test_optimizer", "test_optimizer_update_rule", "decay_scaled_by_lr", False),
              ("test_randomness", "test_dropout_off_in_eval", "identity_in_eval", False)]]
# each claimed native name, flipped to the next framework's name for the same tensor
FLIPS += [("test_naming", "test_native_names", ("names", canonical, fw), names[FRAMEWORKS[(i + 1) % 3]],
           {"framework": fw})
          for canonical, names in CLAIMED_NAMES.items() for i, fw in enumerate(FRAMEWORKS)]


def _leaves(claims: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for key, value in claims.items():
        out |= _leaves(value, (*prefix, key)) if isinstance(value, dict) else {(*prefix, key)}
    return out


@pytest.mark.parametrize("module,test,path,false_value,kwargs", FLIPS,
                         ids=[f"{m}::{t}[{'.'.join(p)}]" for m, t, p, _, _ in FLIPS])
def test_flipped_claim_fails(module: str, test: str, path: tuple[str, ...], false_value: Any,
                             kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module(module)
    claims = copy.deepcopy(mod.CLAIMS)
    node = claims
    for key in path[:-1]:
        node = node[key]
    assert node[path[-1]] != false_value, "the flip must change the claim"
    node[path[-1]] = false_value
    monkeypatch.setattr(mod, "CLAIMS", claims)
    with pytest.raises(AssertionError):
        getattr(mod, test)(**kwargs)


@pytest.mark.parametrize("module", sorted({m for m, *_ in FLIPS}))
def test_every_claim_is_flipped(module: str) -> None:
    """Every expectation a module declares in CLAIMS has a flip above."""
    flipped = {p for m, _, p, _, _ in FLIPS if m == module}
    assert _leaves(importlib.import_module(module).CLAIMS) == flipped
