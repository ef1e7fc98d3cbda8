"""The guide's tests fail when a claim is false. Each test of tests/guide/ reads its expectations from its
module's `CLAIMS`; here one expectation at a time is flipped to a false value (often the claim the guide
used to make) and the test, called in-process, must then fail. One flip per fact row of guide/topics.py
(`test_flipped_fact_fails`, one id per row), then every other expectation in a `CLAIMS` flipped the same
way (`test_flipped_claim_fails`). Cheap: the tests reuse the session fixtures (bench, compiled_runs), so
nothing heavy is measured again per flip."""
from __future__ import annotations

import copy
import importlib
import inspect
import re
from typing import Any, NamedTuple

import pytest

from resnet_rosetta.guide.pitfalls import PITFALLS
from resnet_rosetta.guide.topics import TOPICS


class Flip(NamedTuple):
    module: str  # test module in tests/guide/
    test: str
    path: str  # into the module's CLAIMS, keys joined by "."; a dot inside a key written "\\."
    false: Any
    kwargs: dict[str, Any]  # the test's arguments; the others are session fixtures


def _f(module: str, test: str, path: str, false: Any, **kwargs: Any) -> Flip:
    return Flip(module, test, path, false, kwargs)


PITFALL_BY_ID = {f"{p.framework}-{p.name}": p for p in PITFALLS}
# (topic, fact label) -> the flip that makes the fact false
FACTS: dict[tuple[str, str], Flip] = {
    ("layout", "activations"): _f("test_layout", "test_activation_layout", "activations.flax", "NCHW"),
    ("layout", "an NCHW batch given as is"): _f("test_layout", "test_flax_rejects_nchw", "flax_rejects_nchw", False),
    ("layout", "at the boundary"): _f("test_layout", "test_activation_layout", "flax_boundary_axes.in", (0, 3, 2, 1)),
    ("weights", "conv weight"): _f("test_weights", "test_native_weight_layouts", "conv.flax", "OIHW"),
    ("weights", "Linear weight"): _f("test_weights", "test_native_weight_layouts", "linear.paddle", "OI"),
    ("weights", "from canonical (torchvision)"): _f("test_weights", "test_rules_round_trip_exactly",
                                                    "from_canonical.linear_transposed.paddle", False, fmt="paddle"),
    ("weights", "un-transposed, non-square Linear"): _f("test_weights", "test_untransposed_linear_is_refused",
                                                        "untransposed_linear_refused.paddle", False, fmt="paddle"),
    ("padding", "`padding` when not given"): _f("test_padding", "test_default_padding", "default_output.flax", 6),
    ("padding", "a 3x3 conv in this repository"): _f("test_pitfalls", "test_pitfall",
                                                     "naive_port_is_wrong.flax-same-padding", False,
                                                     pitfall=PITFALL_BY_ID["flax-same-padding"]),
    ("padding", "'SAME' on a stride-2 conv, even input"): _f("test_padding", "test_same_padding_with_stride_2",
                                                             "strided_same_pads.flax", ((1, 1), (1, 1))),
    ("batchnorm", "`momentum` is the weight of"): _f("test_batchnorm", "test_bn_momentum_meaning",
                                                     "new_batch_weight.paddle", 0.25, framework="paddle"),
    ("batchnorm", "default momentum"): _f("test_batchnorm", "test_bn_defaults", "default_momentum.flax", 0.9),
    ("batchnorm", "our spec's 0.1 becomes"): _f("test_batchnorm", "test_running_stats_match_oracle",
                                                "spec_momentum_becomes.paddle", 0.1, framework="paddle"),
    ("batchnorm", "`running_var` is fed (on CPU)"): _f("test_batchnorm", "test_native_running_var_rule",
                                                       "running_var_ddof.paddle", 1, framework="paddle"),
    ("batchnorm", "on a GPU"): _f("test_batchnorm", "test_paddle_correction_follows_the_device",
                                  "paddle_cpu_feeds_unbiased", True, native_unbiased=False),
    ("batchnorm", "epsilon argument"): _f("test_batchnorm", "test_bn_defaults", "epsilon_argument.torch", "epsilon"),
    ("float64", "batch norm's epsilon in a float64 model (given 1e-5)"): _f(
        "test_proving", "test_bn_epsilon_in_a_float64_model", "epsilon_in_float64.paddle", 1e-5, framework="paddle"),
    ("float64", "fp64 parity with that 1e-5 unrounded (eval, train; resnet18's structure at 1/4 widths, one block "
                "per stage, 32 px, batch 2)"): _f("test_proving", "test_an_unrounded_epsilon_in_fp64_parity",
                                                  "unrounded_epsilon_verdict.paddle", "pass", framework="paddle"),
    ("batchnorm", "eval forward with either mistake"): _f("test_batchnorm", "test_bn_mistakes_do_not_show_in_eval",
                                                          "eval_changed_by_bn_mistakes.paddle", True,
                                                          framework="paddle"),
    ("naming", "stem conv"): _f("test_naming", "test_native_names", "names.conv1\\.weight.paddle", "conv1.weight",
                                framework="paddle"),
    ("naming", "shortcut BN variance of block 2.0"): _f(
        "test_naming", "test_native_names", "names.layer2\\.0\\.downsample\\.1\\.running_var.flax",
        "batch_stats/layer2_0/downsample/1/var", framework="flax"),
    ("naming", "classifier"): _f("test_naming", "test_native_names", "names.fc\\.weight.paddle", "fc.weight",
                                 framework="paddle"),
    ("naming", "`paddle.vision.models` names"): _f("test_naming", "test_paddle_vision_names", "paddle_vision_names",
                                                   ["conv._conv.weight", "bb_1_0.short._batch_norm._variance"]),
    ("naming", "extra state per BN"): _f("test_naming", "test_native_names", "num_batches_tracked.paddle", True,
                                         framework="paddle"),
    ("naming", "running statistics are"): _f("test_naming", "test_where_running_statistics_live",
                                             "running_stats_are_parameters.paddle", False),
    ("state", "a freshly built model is in"): _f("test_state", "test_fresh_model_mode", "fresh_mode.torch", "eval"),
    ("state", "a train-mode forward updates"): _f("test_state", "test_train_mode_updates_state",
                                                  "train_forward_updates_in_place.torch", False, framework="torch"),
    ("state", "updating state without asking"): _f("test_state", "test_flax_refuses_hidden_state_update",
                                                   "flax_refuses_hidden_update", False),
    ("init", "conv weights"): _f("test_init", "test_conv_init_scale", "conv_fan.paddle", "fan_out",
                                 framework="paddle"),
    ("init", "conv with `groups` (ResNeXt)"): _f("test_init", "test_grouped_conv_init",
                                                 "grouped_fan_ignores_groups.paddle", False, framework="paddle"),
    ("init", "classifier weight"): _f("test_init", "test_classifier_init", "classifier_weight.flax", "uniform",
                                      framework="flax"),
    ("init", "classifier bias"): _f("test_init", "test_classifier_init", "classifier_bias_zero.torch", True,
                                    framework="torch"),
    ("init", "BN scale, shift, mean, var"): _f("test_init", "test_bn_init", "bn_init.running_var", 0,
                                               framework="torch"),
    ("autograd", "gradients come from"): _f("test_autograd", "test_gradients_agree", "gradients_land_in.flax",
                                            "p.grad"),
    ("autograd", "a second backward"): _f("test_autograd", "test_gradients_accumulate", "second_backward_gives.flax",
                                          2),
    ("autograd", "batch statistics during the loss"): _f("test_state", "test_train_mode_updates_state",
                                                         "train_forward_updates_in_place.flax", True,
                                                         framework="flax"),
    ("no-grad", "a forward without a graph"): _f("test_no_grad", "test_no_grad_forward",
                                                 "graph_recorded_by_default.torch", False, framework="torch"),
    ("no-grad", "cut one value from the graph"): _f("test_no_grad", "test_detach", "cut_factor_is_constant.flax",
                                                    False, framework="flax"),
    ("no-grad", "a tensor made from data"): _f("test_no_grad", "test_new_tensor_defaults",
                                               "paddle_data_stop_gradient", False),
    ("no-grad", "`y += 1` on a value the backward needs"): _f("test_no_grad", "test_augmented_assignment",
                                                              "augmented_assignment_in_place.paddle", True),
    ("no-grad", "an explicit in-place op"): _f("test_no_grad", "test_explicit_in_place",
                                               "in_place_op_breaks_backward.paddle", False),
    ("no-grad", "the residual add here"): _f("test_no_grad", "test_residual_add", "residual_add_in_place.torch",
                                             False),
    ("randomness", "dropout's mask comes from"): _f("test_randomness", "test_dropout_mask_source",
                                                    "mask_independent_of_other_draws.torch", True,
                                                    framework="torch"),
    ("randomness", "a train-mode call without a seed or key"): _f("test_randomness", "test_flax_dropout_needs_a_key",
                                                                  "train_call_needs_a_key.flax", False),
    ("randomness", "kept values are scaled by"): _f("test_randomness", "test_dropout_scaling", "kept_scale.paddle",
                                                    1.0, framework="paddle"),
    ("randomness", "dropout off for evaluation"): _f("test_randomness", "test_dropout_off_in_eval",
                                                     "identity_in_eval.flax", False, framework="flax"),
    ("randomness", "batch norm follows"): _f("test_randomness", "test_one_flag_or_one_switch_per_layer",
                                             "flax_use_running_average.eval", False),
    ("variants", "a bottleneck's stride sits on"): _f("test_variants", "test_stride_placement",
                                                      "strided_conv.hf-v1", "3x3"),
    ("variants", "ResNet-C / ResNet-D"): _f("test_variants", "test_resnet_c_and_d", "pooled_shortcut.paddleclas-vd",
                                            False),
    ("variants", "stem conv, BN"): _f("test_variants", "test_peer_names", "names.stem.hf",
                                      ["conv1.weight", "bn1.running_var"]),
    ("variants", "deep stem (C)"): _f("test_variants", "test_peer_names", "names.deep_stem.classic-vd",
                                      ["conv1._conv.weight", "conv1._batch_norm._variance", "conv2._conv.weight",
                                       "conv3._conv.weight", "conv3._batch_norm.weight"]),
    ("variants", "first block's convs"): _f("test_variants", "test_peer_names", "names.first_block.paddleclas",
                                            ["blocks.0.conv1.conv.weight", "blocks.0.conv2.conv.weight",
                                             "blocks.0.conv3.conv.weight"]),
    ("variants", "shortcut conv, BN of `layer2.0`"): _f("test_variants", "test_peer_names", "names.shortcut.timm-d",
                                                        ["layer2.0.downsample.0.weight",
                                                         "layer2.0.downsample.1.running_var"]),
    ("variants", "classifier"): _f("test_variants", "test_peer_names", "names.classifier.hf",
                                   ["classifier.0.weight", "classifier.0.bias"]),
    ("memory-format", "asking for NHWC in memory"): _f("test_memory_format", "test_asking_for_nhwc",
                                                       "nhwc_tensor_shape.torch", "NHWC"),
    ("memory-format", "conv weights then"): _f("test_memory_format", "test_nhwc_weights", "nhwc_weight_shape.paddle",
                                               "HWIO"),
    ("memory-format", "who picks the physical layout"): _f("test_memory_format", "test_asking_for_nhwc",
                                                           "jax_exposes_strides", True),
    ("memory-format", "a transpose at the boundary"): _f("test_memory_format", "test_boundary_transposes",
                                                         "paddle_transpose_is_a_view", False),
    ("optimizer", "SGD with momentum"): _f("test_optimizer", "test_optimizer_update_rule", "momentum_applied.paddle",
                                           False, framework="paddle"),
    ("optimizer", "update"): _f("test_optimizer", "test_optimizer_update_rule", "gradient_dampened.torch", True,
                                framework="torch"),
    ("optimizer", "L2 weight decay"): _f("test_optimizer", "test_optimizer_update_rule", "decay_scaled_by_lr.flax",
                                         False, framework="flax"),
    ("optimizer", "decay chained after `sgd`"): _f("test_optimizer", "test_optax_chain_order_matters",
                                                   "decay_after_sgd", 0.95),  # the old "p -= wd p"
    ("compilation", "compile"): _f("test_compilation", "test_first_call_compiles", "compiled_output_matches_oracle",
                                   False, framework="paddle"),
    ("compilation", "the first call"): _f("test_compilation", "test_first_call_compiles", "first_two_calls_compile",
                                          [1, 2], framework="torch"),
    ("compilation", "the model passed in"): _f("test_compilation", "test_what_compilation_returns",
                                               "returns_the_model_itself.paddle", False),
    ("compilation", "a new input shape"): _f("test_compilation", "test_new_shapes_recompile",
                                             "counts_after_new_shapes.flax", [1, 1, 2, 2], framework="flax"),
    ("mixed-precision", "mechanism"): _f("test_mixed_precision", "test_bf16_paths", "autocast_context.torch", False,
                                         framework="torch"),
    ("mixed-precision", "on this CPU"): _f("test_mixed_precision", "test_bf16_paths",
                                           "runs_in_bf16_on_this_cpu.paddle", True, framework="paddle"),
    ("mixed-precision", "parameters"): _f("test_mixed_precision", "test_bf16_paths", "parameters_stay", "bfloat16",
                                          framework="flax"),
    ("tf32", "matmul"): _f("test_tf32", "test_tf32_defaults", "torch_tf32.matmul", True),
    ("tf32", "convolution"): _f("test_tf32", "test_tf32_defaults", "torch_tf32.conv", False),
    ("tf32", "the same on a GPU"): _f("test_tf32", "test_tf32_defaults_on_gpu", "paddle_switches.gpu_build",
                                      [False, True]),
    ("tf32", "torch 2.9+ settings"): _f("test_tf32", "test_torch_fp32_precision_api", "torch_fp32_precision",
                                        ["none", "tf32", "read"]),
    ("tf32", "full float32"): _f("test_tf32", "test_full_fp32_precision_switches", "full_fp32.jax_matmul_precision",
                                 "high"),
    ("determinism", "seeding"): _f("test_determinism", "test_seeded_init_is_reproducible",
                                   "same_seed_same_weights.torch", False, framework="torch"),
    ("determinism", "another draw before building"): _f("test_determinism", "test_global_generators_are_shared",
                                                        "other_draw_changes_weights.flax", True),
    ("determinism", "deterministic kernels"): _f("test_determinism", "test_deterministic_switches",
                                                 "torch_deterministic_by_default", True),
    ("block", "class"): _f("test_block", "test_block_structure", "classes.bottleneck.paddle", "Bottleneck",
                           spec="bottleneck"),
    ("block", "conv + BN pairs"): _f("test_block", "test_block_structure", "first_conv_index.paddle", 1,
                                     spec="bottleneck"),
    ("block", "projection shortcut"): _f("test_block", "test_block_structure", "shortcut.paddle", ["downsample"],
                                         spec="bottleneck"),
    ("block", "stride sits on"): _f("test_block", "test_block_structure", "strided_conv.bottleneck", 0,
                                    spec="bottleneck"),
    ("data-parallel", "engine"): _f("test_data_parallel", "test_engines_and_backends", "engine.paddle",
                                    "paddle.distributed.fleet", variant="paddle"),
    ("data-parallel", "on CPU, over"): _f("test_data_parallel", "test_engines_and_backends", "cpu_backend.torch",
                                          "mpi", variant="torch"),
    ("data-parallel", "gradients"): _f("test_data_parallel", "test_gradients_are_averaged",
                                       "gradient_reduction.torch", "sum", variant="torch"),
    ("data-parallel", "train-mode batch norm normalises with"): _f(
        "test_data_parallel", "test_batch_norm_normalises_with", "normalises_with.flax", "local", variant="flax"),
    ("data-parallel", "running statistics"): _f("test_data_parallel", "test_running_statistics_kept",
                                                "running_stats.torch", "local", variant="torch"),
    ("data-parallel", "SyncBatchNorm on CPU"): _f("test_data_parallel", "test_sync_batch_norm_on_cpu",
                                                  "sync_batch_norm_on_cpu.torch", "available", framework="torch"),
}
# Expectations no fact row names alone (the others' siblings are derived below)
EXTRA: dict[str, Flip] = {
    "variants-hf-v1-default": _f("test_variants", "test_stride_placement", "hf_downsample_in_bottleneck_default",
                                 True),
    "variants-stem-kernel": _f("test_variants", "test_resnet_c_and_d", "stem_kernel.hf", 3),
    "variants-deep-stem-widths": _f("test_variants", "test_resnet_c_and_d", "deep_stem_widths.timm-d", [24, 32, 64]),
    "canonical-conv-to-flax": _f("test_weights", "test_rules_round_trip_exactly", "from_canonical.conv.flax", None,
                                 fmt="flax"),
    "padding-torch-strided-same": _f("test_padding", "test_same_padding_with_stride_2", "torch_refuses_strided_same",
                                     False),
    "naming-classifier-bias": _f("test_naming", "test_native_names", "names.fc\\.bias.paddle", "fc.bias",
                                 framework="paddle"),
    "bf16-mantissa": _f("test_mixed_precision", "test_bf16_stored_mantissa_bits", "bf16_stored_mantissa_bits", 8),
    "tf32-jax-precision": _f("test_tf32", "test_tf32_defaults", "jax_matmul_precision", "highest"),
    "determinism-paddle-flag": _f("test_determinism", "test_deterministic_switches",
                                  "paddle_cpu_has_cudnn_deterministic_flag", True),
    "tf32-cpu-wheel": _f("test_tf32", "test_tf32_defaults", "paddle_switches.cpu_wheel", [True, True]),
    "block-basic-class": _f("test_block", "test_block_structure", "classes.basic.paddle", "BottleneckBlock",
                            spec="basic"),
    "dp-identical-running-stats": _f("test_data_parallel", "test_running_statistics_kept",
                                     "replicas_keep_identical_running_stats.torch", True, variant="torch"),
    "dp-sync-bn-error": _f("test_data_parallel", "test_sync_batch_norm_on_cpu", "sync_batch_norm_cpu_error.torch",
                           "SyncBatchNorm is not implemented", framework="torch"),
    "block-basic-stride": _f("test_block", "test_block_structure", "strided_conv.basic", 1, spec="basic"),
}


def _path(flip: Flip) -> tuple[str, ...]:
    """The flip's keys ("names.fc\\.weight.paddle" -> names, fc.weight, paddle)."""
    return tuple(k.replace("\0", ".") for k in flip.path.replace("\\.", "\0").split("."))


def _leaves(claims: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for key, value in claims.items():
        out |= _leaves(value, (*prefix, key)) if isinstance(value, dict) else {(*prefix, key)}
    return out


def _claim(module: str, path: tuple[str, ...]) -> Any:
    node = importlib.import_module(module).CLAIMS
    for key in path:
        node = node[key]
    return node


def _sibling_flips() -> dict[str, Flip]:
    """The same flip for every other leaf of a fact's dict (other frameworks, other pitfalls): the false
    value is the fact's own false or true value, whichever differs from the sibling's; `not` for booleans."""
    covered = {(f.module, _path(f)) for f in [*FACTS.values(), *EXTRA.values()]}
    out: dict[str, Flip] = {}
    for fact in [*FACTS.values(), *EXTRA.values()]:
        path = _path(fact)
        parent, true = path[:-1], _claim(fact.module, path)
        if not parent:
            continue
        for key in _claim(fact.module, parent):
            leaf = (*parent, key)
            if (fact.module, leaf) in covered or isinstance(_claim(fact.module, leaf), dict):
                continue
            value = _claim(fact.module, leaf)
            false = (not value) if isinstance(value, bool) else next(v for v in (fact.false, true) if v != value)
            # an argument that named the fact's leaf (its framework, format or pitfall) names the sibling's
            kwargs = {name: key if value == path[-1] else value for name, value in fact.kwargs.items()}
            if "pitfall" in kwargs:
                kwargs["pitfall"] = PITFALL_BY_ID[key]
            covered.add((fact.module, leaf))
            out[f"{fact.module}::{fact.test}[{'.'.join(leaf)}]"] = Flip(
                fact.module, fact.test, ".".join(k.replace(".", "\\.") for k in leaf), false, kwargs)
    return out


SIBLINGS = _sibling_flips()


def _run_flipped(flip: Flip, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module(flip.module)
    path = _path(flip)
    claims = copy.deepcopy(mod.CLAIMS)
    node = claims
    for key in path[:-1]:
        node = node[key]
    assert node[path[-1]] != flip.false, "the flip must change the claim"
    node[path[-1]] = flip.false
    monkeypatch.setattr(mod, "CLAIMS", claims)
    test = getattr(mod, flip.test)
    kwargs = dict(flip.kwargs)
    if "spec" in kwargs:  # test_block's specs, by block type
        kwargs["spec"] = {"basic": mod.TINY, "bottleneck": mod.TINY50}[kwargs["spec"]]
    for name in inspect.signature(test).parameters.keys() - kwargs.keys():
        kwargs[name] = request.getfixturevalue(name)  # session fixtures: computed once for all flips
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        test(**kwargs)


def _fact_id(key: tuple[str, str]) -> str:
    return f"{key[0]}:{re.sub(r'[^A-Za-z0-9.+-]+', '_', key[1]).strip('_')}"


@pytest.mark.parametrize("fact", FACTS, ids=[_fact_id(k) for k in FACTS])
def test_flipped_fact_fails(fact: tuple[str, str], request: pytest.FixtureRequest,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    _run_flipped(FACTS[fact], request, monkeypatch)


OTHERS = {**EXTRA, **SIBLINGS}


@pytest.mark.parametrize("name", OTHERS)
def test_flipped_claim_fails(name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_flipped(OTHERS[name], request, monkeypatch)


def test_every_fact_is_flipped_by_its_own_test() -> None:
    """Every fact row has a flip above, made in the test its row names as proof."""
    rows = {(t.name, r.label): r for t in TOPICS for r in t.rows}
    assert set(FACTS) == set(rows)
    for key, flip in FACTS.items():
        proof = rows[key].proof.partition("[")[0]
        assert proof == f"tests/guide/{flip.module}.py::{flip.test}", key


@pytest.mark.parametrize("module", sorted({f.module for f in FACTS.values()}))
def test_every_claim_is_flipped(module: str) -> None:
    """Every expectation a module declares in CLAIMS is flipped, as a fact or a sibling."""
    flipped = {_path(f) for f in [*FACTS.values(), *OTHERS.values()] if f.module == module}
    assert _leaves(importlib.import_module(module).CLAIMS) == flipped
