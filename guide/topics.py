"""The guide's content as data: one `Topic` per difference between PyTorch, Paddle and Flax.

Each topic has fact rows (every row names the test in tests/guide/ that fails if the fact stops
being true), code cells read from this repository's source at run time (`Code`), a note,
and, where the guide quotes numbers, a table measured by `resnet-rosetta explain --measure`.
`resnet-rosetta explain TOPIC` prints a topic; docs/differences.md is generated from all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from resnet_rosetta.common.catalogue import CATALOGUE, CONTROLS
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.frameworks import FRAMEWORKS
from .source import Code

FRAMEWORK_TITLES = {"torch": "PyTorch", "paddle": "Paddle", "flax": "Flax linen"}
PROOFS = "tests/guide/"  # where the tests that prove the facts live
# The residual-block class each framework builds for a spec's block type ({block} in code and rows).
BLOCK_CLASSES = {
    "basic": {"torch": "BasicBlock", "paddle": "BasicBlock", "flax": "BasicBlock"},
    "bottleneck": {"torch": "Bottleneck", "paddle": "BottleneckBlock", "flax": "Bottleneck"},
}
# Where the stride-2 conv of a downsampling block sits ({stride} in rows); "v1.5" names the Bottleneck choice.
BLOCK_STRIDE = {"basic": "the first 3x3 conv",
                "bottleneck": "the 3x3 conv, not the first 1x1 (torchvision's ResNet v1.5)"}


@dataclass(frozen=True)
class Row:
    """One fact in three frameworks, and the test that proves it (a pytest node id: FILE::TEST)."""

    label: str
    torch: str
    paddle: str
    flax: str
    proof: str

    def cell(self, framework: str) -> str:
        return getattr(self, framework)

    @property
    def proof_file(self) -> str:
        return self.proof.partition("::")[0]

    @property
    def proof_test(self) -> str:
        return self.proof.partition("::")[2]


@dataclass(frozen=True)
class Topic:
    name: str
    title: str
    summary: str
    rows: tuple[Row, ...] = ()
    code: dict[str, tuple[Code, ...]] = field(default_factory=dict)
    note: str = ""
    per_block: bool = False  # rows and code depend on the architecture's block type
    measured: bool = False  # the guide quotes a table measured by `explain --measure`
    table: tuple[tuple[str, ...], ...] = ()  # claims as a table, header first: each row asserted by `table_proof`
    table_proof: str = ""  # the test file whose tests assert every row of `table`

    def cells(self, framework: str, spec: ResNetSpec) -> tuple[Code, ...]:
        """The framework's code cells, `{block}` resolved for `spec`."""
        block = BLOCK_CLASSES[spec.block][framework]
        return tuple(c.with_block(block) for c in self.code.get(framework, ()))

    def facts(self, spec: ResNetSpec) -> tuple[Row, ...]:
        if not self.per_block:
            return self.rows
        names = BLOCK_CLASSES[spec.block]
        return tuple(Row(r.label, *(r.cell(fw).format(block=names[fw], stride=BLOCK_STRIDE[spec.block])
                                    for fw in FRAMEWORKS), r.proof)
                     for r in self.rows)

    @property
    def proofs(self) -> dict[str, tuple[str, ...]]:
        """Test file -> the tests in it that prove this topic's facts, in order of first mention."""
        files: dict[str, dict[str, None]] = {}
        for r in self.rows:
            files.setdefault(r.proof_file, {})[r.proof_test] = None
        return {f: tuple(tests) for f, tests in files.items()}


def _catalogue_table() -> tuple[tuple[str, ...], ...]:
    """The broken-port catalogue: bug, framework, the fp64 verdict and first divergence, the fp32 verdict,
    and the fp64 verdict of the same bug in a user-style port checked through `parity --model`."""
    return (("bug", "planted in", "fp64 (bound 1e-10, no excuses)", "fp32 (floors, branch-following)",
             "in a user's port, via --model (fp64)"),
            *((e.what, e.framework, f"FAIL at {e.fp64}", e.fp32, e.through_model) for e in CATALOGUE),
            *((f"no bug (control, {config})", fw, "pass", fp32, "pass") for (config, fw), fp32 in CONTROLS.items()))


def _each(module: str, *qualnames: str) -> dict[str, tuple[Code, ...]]:
    """The same names in each framework's mirrored module, e.g. `_each("frameworks.{fw}.demos", "seeded_model")`."""
    return {fw: tuple(Code(module.format(fw=fw), q) for q in qualnames) for fw in FRAMEWORKS}


TOPICS: tuple[Topic, ...] = (
    Topic(
        "layout", "Tensor layout", "NCHW in PyTorch and Paddle, NHWC in Flax",
        rows=(
            Row("activations", "NCHW", "NCHW", "NHWC", "tests/guide/test_layout.py::test_activation_layout"),
            Row("an NCHW batch given as is", "runs", "runs",
                "rejected: `conv1` reads the width as channels", "tests/guide/test_layout.py::test_flax_rejects_nchw"),
            Row("at the boundary", "nothing to do", "nothing to do",
                "`np.transpose(x, (0, 2, 3, 1))` in, `(0, 3, 1, 2)` out",
                "tests/guide/test_layout.py::test_activation_layout"),
        ),
        code={
            "torch": (Code("frameworks.torch.model", "ResNet.forward_stages", "flatten"),),
            "paddle": (Code("frameworks.paddle.model", "ResNet.forward_stages", "flatten"),),
            "flax": (Code("frameworks.flax.model", "ResNet.__call__", "mean(axis"),
                     Code("frameworks.flax.adapter", "_to_nhwc"),
                     Code("frameworks.flax.adapter", "_to_nchw")),
        },
        note="Global average pooling shows the layout: PyTorch and Paddle reduce dims 2 and 3, Flax dims 1 and "
             "2. The Flax adapter converts at its boundary so that every comparison in this repository "
             "happens in NCHW, while the model itself stays idiomatic NHWC."),
    Topic(
        "weights", "Conv and Linear weight layouts", "OIHW vs HWIO kernels, [out, in] vs [in, out] Linear",
        rows=(
            Row("conv weight", "OIHW `[out, in/groups, kh, kw]`", "OIHW", "HWIO `[kh, kw, in/groups, out]`",
                "tests/guide/test_weights.py::test_native_weight_layouts"),
            Row("Linear weight", "`[out, in]`: y = x Wᵀ + b", "`[in, out]`: y = x W + b", "Dense kernel `[in, out]`",
                "tests/guide/test_weights.py::test_native_weight_layouts"),
            Row("from canonical (torchvision)", "as is", "Linear: `.T`",
                "conv: `transpose(2, 3, 1, 0)`; Dense: `.T`",
                "tests/guide/test_weights.py::test_rules_round_trip_exactly"),
            Row("un-transposed, non-square Linear", "—", "refused by the strict loader (shape)",
                "refused by the strict loader (shape)",
                "tests/guide/test_weights.py::test_untransposed_linear_is_refused"),
        ),
        code={
            "torch": (Code("frameworks.torch.model", "conv3x3"),
                      Code("frameworks.torch.model", "ResNet.__init__", "nn.Linear")),
            "paddle": (Code("frameworks.paddle.model", "ConvBNLayer.__init__", "nn.Conv2D"),
                       Code("frameworks.paddle.model", "ResNet.__init__", "nn.Linear"),
                       Code("common.rules", "_t")),
            "flax": (Code("frameworks.flax.model", "Bottleneck.__call__", 'name="conv2"'),
                     Code("frameworks.flax.model", "ResNet.__call__", "nn.Dense"),
                     Code("common.rules", "_oihw_to_hwio")),
        },
        note="The rule table (common/rules.py) converts canonical weights with transposes only, so ports are "
             "exact. The dangerous mistakes are the ones no shape check catches: a kernel reshaped instead of "
             "transposed, `w.T` on a square kernel (it reverses all four axes: WHIO, H and W swapped), or an "
             "un-transposed Linear whose input and output sizes are equal. Each loads silently and computes "
             "something else:",
        measured=True),
    Topic(
        "padding", "Padding: explicit vs 'SAME'", "why Flax must not use 'SAME' for stride-2 convolutions",
        rows=(
            Row("`padding` when not given", "0: the output shrinks", "0: the output shrinks",
                "'SAME': `nn.Conv` keeps the spatial size", "tests/guide/test_padding.py::test_default_padding"),
            Row("a 3x3 conv in this repository", "`padding=1`", "`padding=(filter_size - 1) // 2`",
                "`padding=((1, 1), (1, 1))`", "tests/guide/test_pitfalls.py::test_pitfall[flax-same-padding]"),
            Row("'SAME' on a stride-2 conv, even input", "refused: 'same' is not supported for strided convolutions",
                "pads (0, 1): bottom and right only", "pads (0, 1): bottom and right only",
                "tests/guide/test_padding.py::test_same_padding_with_stride_2"),
        ),
        code={
            "torch": (Code("frameworks.torch.model", "conv3x3"),
                      Code("frameworks.torch.model", "ResNet.__init__", "MaxPool2d")),
            "paddle": (Code("frameworks.paddle.model", "ConvBNLayer.__init__", "padding"),
                       Code("frameworks.paddle.model", "ResNet.__init__", "MaxPool2D")),
            "flax": (Code("frameworks.flax.model", "BasicBlock.__call__", "padding"),
                     Code("frameworks.flax.model", "ResNet.__call__", "max_pool")),
        },
        note="Flax's `nn.Conv` defaults to `padding='SAME'` where PyTorch and Paddle default to 0, so a port "
             "that leaves the argument out runs, keeps the shapes plausible and pads differently. "
             "torchvision pads symmetrically, (k - 1) / 2 on every side. 'SAME' pads the total "
             "max((ceil(n / s) - 1) s + k - n, 0) with the odd pixel at the bottom and right, so for a stride-2 "
             "conv on an even input it pads (0, 1) instead of (1, 1): the output has the right shape and wrong "
             "values. The Flax ImageNet example uses 'SAME'; this repository passes explicit pairs everywhere, "
             "max-pool included:",
        measured=True),
    Topic(
        "batchnorm", "Batch norm: momentum and running variance", "momentum conventions, biased vs unbiased variance",
        rows=(
            Row("`momentum` is the weight of", "the new batch statistic", "the old running value",
                "the old running value", "tests/guide/test_batchnorm.py::test_bn_momentum_meaning"),
            Row("default momentum", "0.1", "0.9", "0.99", "tests/guide/test_batchnorm.py::test_bn_defaults"),
            Row("our spec's 0.1 becomes", "`momentum=0.1`", "`momentum=0.9`", "`m = 0.9` (old value's weight)",
                "tests/guide/test_batchnorm.py::test_running_stats_match_oracle"),
            Row("`running_var` is fed (on CPU)", "the unbiased batch variance (× n/(n−1))", "the biased batch variance",
                "the biased batch variance", "tests/guide/test_batchnorm.py::test_native_running_var_rule"),
            Row("on a GPU", "the same", "not checked here: 4-D input goes through cuDNN, which may keep the unbiased "
                "one; the model measures the convention per device", "the same (XLA computes it as on CPU)",
                "tests/guide/test_batchnorm.py::test_paddle_correction_follows_the_device"),
            Row("epsilon argument", "`eps`", "`epsilon`", "`epsilon`",
                "tests/guide/test_batchnorm.py::test_bn_defaults"),
            Row("eval forward with either mistake", "—", "unchanged: only the running statistics drift",
                "unchanged: only the running statistics drift",
                "tests/guide/test_batchnorm.py::test_bn_mistakes_do_not_show_in_eval"),
        ),
        code={
            "torch": (Code("frameworks.torch.model", "BatchNorm2d"),),
            "paddle": (Code("frameworks.paddle.model", "BatchNorm2D"),),
            "flax": (Code("frameworks.flax.model", "BatchNorm"),),
        },
        note="running = (1 - m) * running + m * batch in PyTorch, running = m * running + (1 - m) * batch in "
             "Paddle and Flax. The spec stores PyTorch's value and each framework converts; the spec's "
             "`bn_running_var` decides which batch variance feeds the running one, and each BatchNorm above "
             "rescales the native update when it differs. Paddle's convention depends on the kernel (its CPU "
             "kernel feeds the biased variance; cuDNN, used for 4-D input on GPUs, may not), so the Paddle "
             "BatchNorm measures the native update once per device and rescales only what differs. n = batch × height × width, so the unbiased "
             "correction matters most in late stages and small batches. An eval-mode forward of ported "
             "weights does not notice either mistake; the running statistics after one training step do:",
        measured=True),
    Topic(
        "naming", "Parameter and buffer naming", "torchvision names, this repository's classic Paddle names, Flax paths",
        rows=(
            Row("stem conv", "`conv1.weight`", "`conv._conv.weight`", "`params/conv1/kernel`",
                "tests/guide/test_naming.py::test_native_names"),
            Row("shortcut BN variance of block 2.0", "`layer2.0.downsample.1.running_var`",
                "`bb_1_0.short._batch_norm._variance`", "`batch_stats/layer2_0/downsample_bn/var`",
                "tests/guide/test_naming.py::test_native_names"),
            Row("classifier", "`fc.weight`, `fc.bias`", "`out.weight`, `out.bias`",
                "`params/fc/kernel`, `params/fc/bias`", "tests/guide/test_naming.py::test_native_names"),
            Row("`paddle.vision.models` names", "—", "torchvision's: `conv1.weight`, `layer2.0.downsample.1._variance`, "
                "`fc.weight`", "—", "tests/guide/test_naming.py::test_paddle_vision_names"),
            Row("extra state per BN", "`num_batches_tracked`", "none", "none",
                "tests/guide/test_naming.py::test_native_names"),
            Row("running statistics are", "buffers: in `state_dict()`, not in `parameters()`",
                "parameters with `stop_gradient=True`: in `parameters()`",
                "the `batch_stats` collection, beside `params`",
                "tests/guide/test_naming.py::test_where_running_statistics_live"),
        ),
        code={
            "torch": (Code("frameworks.torch.model", "_downsample"),
                      Code("frameworks.torch.model", "ResNet.__init__", "add_module")),
            "paddle": (Code("frameworks.paddle.model", "BottleneckBlock.__init__", "self.short"),
                       Code("frameworks.paddle.model", "ResNet.__init__", "add_sublayer"),
                       Code("common.rules", "_paddle_module")),
            "flax": (Code("frameworks.flax.model", "_shortcut"),
                     Code("frameworks.flax.model", "ResNet.__call__", 'name=f"layer'),
                     Code("common.rules", "_flax_module")),
        },
        note="Names come from attribute names (PyTorch, Paddle) or from `name=` (Flax). The Paddle names above "
             "are this repository's Paddle model, which keeps the classic Paddle (PaddleClas) ResNet source's "
             "names, so its rule is a function; `paddle.vision.models.resnet50` uses torchvision's names instead "
             "(`conv1.weight`, `layer2.0.downsample.1._variance`, `fc.weight`), with Paddle's `_mean`/`_variance` "
             "for the statistics. The Flax rule only joins block paths. "
             "Because Paddle's running statistics "
             "are parameters, an optimizer built from `parameters()` receives them too (they get no gradient): "
             "filter on `stop_gradient`, as the Paddle Trainer does."),
    Topic(
        "state", "Train/eval switching and where state lives", "modules that mutate vs variables that are returned",
        rows=(
            Row("a freshly built model is in", "train mode", "train mode",
                "no mode: `train` is an argument of `__call__`", "tests/guide/test_state.py::test_fresh_model_mode"),
            Row("a train-mode forward updates", "the module's buffers, in place",
                "the layer's `_mean`, `_variance`, in place", "nothing: it returns the new `batch_stats`",
                "tests/guide/test_state.py::test_train_mode_updates_state"),
            Row("updating state without asking", "—", "—",
                "refused: `ModifyScopeVariableError` unless `mutable=['batch_stats']`",
                "tests/guide/test_state.py::test_flax_refuses_hidden_state_update"),
        ),
        code={
            "torch": (Code("frameworks.torch.adapter", "Adapter.forward", "self.model.train"),
                      Code("frameworks.torch.model", "BatchNorm2d.forward", "copy_")),
            "paddle": (Code("frameworks.paddle.adapter", "Adapter.forward", "self.model.train"),
                       Code("frameworks.paddle.model", "BatchNorm2D.forward", "set_value")),
            "flax": (Code("frameworks.flax.adapter", "Adapter._apply", "mutable"),
                     Code("frameworks.flax.adapter", "Adapter.forward", "self.variables =")),
        },
        note="PyTorch and Paddle models are objects holding their state; `train()`/`eval()` flip a flag that "
             "every BatchNorm reads, and forgetting `eval()` silently evaluates with batch statistics. A Flax "
             "module holds no state: parameters and running statistics are collections in a dict passed to "
             "`apply`, and an update comes back as a value that the caller keeps or drops."),
    Topic(
        "init", "Initialization defaults", "what each framework draws when nobody ports weights",
        rows=(
            Row("conv weights", "`kaiming_normal_(mode='fan_out')`: std √(2/fan_out), set explicitly",
                "Paddle's default: Normal(0, √(2/fan_in)); the classic source sets none",
                "`variance_scaling(2.0, 'fan_out', 'normal')`: std √(2/fan_out), set explicitly",
                "tests/guide/test_init.py::test_conv_init_scale"),
            Row("conv with `groups` (ResNeXt)", "fan_out = out·kh·kw, as without groups",
                "fan_in = in·kh·kw: the whole input, not in/groups", "fan_out = out·kh·kw, as without groups",
                "tests/guide/test_init.py::test_grouped_conv_init"),
            Row("classifier weight", "PyTorch's default: U(±1/√fan_in)", "U(±1/√fan_in), set explicitly",
                "Flax's default `lecun_normal`: std 1/√fan_in", "tests/guide/test_init.py::test_classifier_init"),
            Row("classifier bias", "U(±1/√fan_in)", "zeros", "zeros", "tests/guide/test_init.py::test_classifier_init"),
            Row("BN scale, shift, mean, var", "1, 0, 0, 1", "1, 0, 0, 1", "1, 0, 0, 1",
                "tests/guide/test_init.py::test_bn_init"),
        ),
        code={
            "torch": (Code("frameworks.torch.model", "ResNet._init_weights"),),
            "paddle": (Code("frameworks.paddle.model", "ConvBNLayer.__init__", "nn.Conv2D"),
                       Code("frameworks.paddle.model", "ResNet.__init__", "stdv")),
            "flax": (Code("frameworks.flax.model", "conv_init"),
                     Code("frameworks.flax.model", "ResNet.__call__", "partial(nn.Conv"),
                     Code("frameworks.flax.model", "ResNet.__call__", "nn.Dense")),
        },
        note="Ported weights overwrite all of this. It matters when each framework trains from scratch: the "
             "same architecture then starts from different distributions (Paddle's convs are scaled by fan_in, "
             "not fan_out; with `groups` Paddle's fan_in counts every input channel, so a grouped conv starts "
             "√groups times smaller than its own fan_in suggests). `train` therefore draws torchvision's "
             "distributions once in NumPy "
             "(common/training.py, `initial_weights`) and ports them to every framework."),
    Topic(
        "autograd", "Autograd: backward() vs jax.grad", "gradients as side effects vs as return values",
        rows=(
            Row("gradients come from", "`loss.backward()`, into `p.grad`", "`loss.backward()`, into `p.grad`",
                "`jax.value_and_grad(loss_fn)`, returned as a tree",
                "tests/guide/test_autograd.py::test_gradients_agree"),
            Row("a second backward", "adds to `p.grad` (clear with `zero_grad`)",
                "adds to `p.grad` (clear with `clear_grad`)", "nothing accumulates: a pure function",
                "tests/guide/test_autograd.py::test_gradients_accumulate"),
            Row("batch statistics during the loss", "updated in place as a side effect",
                "updated in place as a side effect", "returned as auxiliary output (`has_aux=True`)",
                "tests/guide/test_state.py::test_train_mode_updates_state"),
        ),
        code={
            "torch": (Code("frameworks.torch.training", "Trainer._backward"),),
            "paddle": (Code("frameworks.paddle.training", "Trainer._backward"),),
            "flax": (Code("frameworks.flax.training", "Trainer.__init__", "loss_fn"),),
        },
        note="The three gradients of the same loss on the same weights agree within the gradient tolerance "
             "(common/tolerance.py); Flax returns them under native paths and HWIO layouts, which the rule "
             "table maps back to canonical names."),
    Topic(
        "no-grad", "Gradients off, in-place ops and immutability",
        "no_grad and detach vs stop_gradient; in-place updates vs `.at[].set`",
        rows=(
            Row("a forward without a graph", "`with torch.no_grad():`", "`with paddle.no_grad():`",
                "nothing to switch off: no graph exists outside `jax.grad`",
                "tests/guide/test_no_grad.py::test_no_grad_forward"),
            Row("cut one value from the graph", "`t.detach()`", "`t.detach()`", "`jax.lax.stop_gradient(x)`",
                "tests/guide/test_no_grad.py::test_detach"),
            Row("a tensor made from data", "`requires_grad=False` unless asked",
                "`stop_gradient=True` (a layer's parameters: False)",
                "no flag: `jax.grad` differentiates its arguments", "tests/guide/test_no_grad.py::test_new_tensor_defaults"),
            Row("`y += 1` on a value the backward needs", "in place: the backward raises (version counter)",
                "rebinds `y` to a new tensor: the backward works", "rebinds `y`: arrays are immutable",
                "tests/guide/test_no_grad.py::test_augmented_assignment"),
            Row("an explicit in-place op", "`y.add_(1)`: the backward raises (version counter)",
                "`y.add_(1)`: the backward raises (version counter)",
                "`x[0] = 1` raises TypeError; `x.at[0].set(1)` returns a new array",
                "tests/guide/test_no_grad.py::test_explicit_in_place"),
            Row("the residual add here", "`out += identity`: in place (no backward needs the BN output)",
                "`paddle.add(short, conv1)`: a new tensor", "`y + shortcut`: a new array",
                "tests/guide/test_no_grad.py::test_residual_add"),
        ),
        code={
            "torch": (Code("frameworks.torch.demos", "inference_logits"), Code("frameworks.torch.demos", "frozen_features"),
                      Code("frameworks.torch.model", "BasicBlock.forward")),
            "paddle": (Code("frameworks.paddle.demos", "inference_logits"),
                       Code("frameworks.paddle.demos", "frozen_features"),
                       Code("frameworks.paddle.model", "BasicBlock.forward")),
            "flax": (Code("frameworks.flax.demos", "inference_logits"), Code("frameworks.flax.demos", "frozen_features"),
                     Code("frameworks.flax.model", "BasicBlock.__call__", "nn.relu(y +")),
        },
        note="PyTorch and Paddle record a graph as operations run, so turning gradients off is a mode; JAX "
             "differentiates a function when asked, so there is nothing to turn off and `stop_gradient` marks "
             "a constant inside that function. Both tape-based frameworks keep a version counter per tensor: "
             "an in-place change to a value the backward saved makes the backward raise instead of computing "
             "a wrong gradient. The same `+=` is in place in PyTorch and a new tensor in Paddle."),
    Topic(
        "randomness", "Random numbers, dropout and train/eval", "global generators and one mode flag vs explicit "
        "keys and one switch per layer",
        rows=(
            Row("dropout's mask comes from", "the global generator (`torch.manual_seed`)",
                "the global generator (`paddle.seed`)", "the key passed as `apply(..., rngs={'dropout': key})`",
                "tests/guide/test_randomness.py::test_dropout_mask_source"),
            Row("a train-mode call without a seed or key", "draws from the global state",
                "draws from the global state", "refused: `InvalidRngError` (no 'dropout' key)",
                "tests/guide/test_randomness.py::test_flax_dropout_needs_a_key"),
            Row("kept values are scaled by", "1/(1−p) in training", "1/(1−p) in training ('upscale_in_train')",
                "1/(1−rate) in training", "tests/guide/test_randomness.py::test_dropout_scaling"),
            Row("dropout off for evaluation", "`eval()`", "`eval()`", "`deterministic=True`",
                "tests/guide/test_randomness.py::test_dropout_off_in_eval"),
            Row("batch norm follows", "the same `train()`/`eval()` flag", "the same `train()`/`eval()` flag",
                "its own switch, `use_running_average` (here: `not train`)",
                "tests/guide/test_randomness.py::test_one_flag_or_one_switch_per_layer"),
        ),
        code={
            "torch": (Code("frameworks.torch.demos", "dropout_features"),),
            "paddle": (Code("frameworks.paddle.demos", "dropout_features"),),
            "flax": (Code("frameworks.flax.demos", "dropout_features"),
                     Code("frameworks.flax.model", "ResNet.__call__", "use_running_average")),
        },
        note="The ResNets here have no dropout, but the classifier heads students add usually do. In PyTorch "
             "and Paddle one `train()`/`eval()` flag switches dropout and batch norm together and the mask "
             "comes from the same global generator as the initial weights, so an extra draw anywhere changes "
             "every later mask. In Flax every random layer asks for a named key and every mode is an argument: "
             "`deterministic` for dropout and `use_running_average` for batch norm are separate, and forgetting "
             "one of them is the Flax version of forgetting `eval()`."),
    Topic(
        "memory-format", "Memory layout and its cost", "channels_last strides, per-layer data_format, XLA's "
        "own choice, and the copies at the boundary",
        rows=(
            Row("asking for NHWC in memory", "`x.to(memory_format=torch.channels_last)`: the shape stays "
                "`[N, C, H, W]`, the strides become NHWC's", "`data_format='NHWC'` on every conv, BN and pool: "
                "the tensors are `[N, H, W, C]`", "nothing to ask: arrays are `[N, H, W, C]`",
                "tests/guide/test_memory_format.py::test_asking_for_nhwc"),
            Row("conv weights then", "OIHW shape (NHWC strides once the model is converted)", "OIHW, unchanged",
                "HWIO", "tests/guide/test_memory_format.py::test_nhwc_weights"),
            Row("who picks the physical layout", "the strides (you)", "`data_format` (you)",
                "XLA: a `jax.Array` exposes no strides", "tests/guide/test_memory_format.py::test_asking_for_nhwc"),
            Row("a transpose at the boundary", "`permute`: a strided view; `.contiguous()` copies",
                "`transpose`: a strided view (Paddle 3); `.contiguous()` copies",
                "`np.transpose`: a view; `jnp.asarray` copies it to the device",
                "tests/guide/test_memory_format.py::test_boundary_transposes"),
        ),
        code={
            "torch": (Code("frameworks.torch.demos", "channels_last"),),
            "paddle": (Code("frameworks.paddle.demos", "nhwc_conv_bn"),),
            "flax": (Code("frameworks.flax.adapter", "_to_nhwc"),),
        },
        note="The layout topic is about the logical axis order; this one is about memory. channels_last is "
             "a stride trick that CPU and tensor-core kernels favour, so a PyTorch model can switch without "
             "touching its code; Paddle's NHWC changes the shapes every layer sees; JAX leaves the physical "
             "layout to XLA's layout assignment. Every transpose at a boundary is free as a view and costs a "
             "full copy of the batch as soon as something needs it contiguous or on a device, which is why "
             "the Flax adapter here converts once on the way in and once on the way out."),
    Topic(
        "optimizer", "Optimizer semantics: momentum and weight decay", "one SGD rule written three ways",
        rows=(
            Row("SGD with momentum", "`torch.optim.SGD(momentum=μ)`", "`paddle.optimizer.Momentum(momentum=μ)`",
                "`optax.sgd(lr, momentum=μ)`", "tests/guide/test_optimizer.py::test_optimizer_update_rule"),
            Row("update", "b = μ b + g; p −= lr b", "v = μ v + g; p −= lr v", "t = μ t + g; p −= lr t",
                "tests/guide/test_optimizer.py::test_optimizer_update_rule"),
            Row("L2 weight decay", "`weight_decay=wd`: g += wd p", "`weight_decay=L2Decay(wd)`: g += wd p",
                "`add_decayed_weights(wd)` chained before `sgd`",
                "tests/guide/test_optimizer.py::test_optimizer_update_rule"),
            Row("decay chained after `sgd`", "—", "—", "p += wd p: the decay's sign flips and the weights grow "
                "(p = 1, g = 0, wd = 0.05 gives 1.05), not scaled by lr",
                "tests/guide/test_optimizer.py::test_optax_chain_order_matters"),
        ),
        code={
            "torch": (Code("frameworks.torch.training", "Trainer.__init__", "torch.optim.SGD"),
                      Code("frameworks.torch.training", "Trainer.step")),
            "paddle": (Code("frameworks.paddle.training", "Trainer.__init__", "paddle.optimizer.Momentum"),
                       Code("frameworks.paddle.training", "Trainer.step")),
            "flax": (Code("frameworks.flax.training", "Trainer.__init__", "optax.chain"),
                     Code("frameworks.flax.training", "Trainer.__init__", "tx.update")),
        },
        note="Here `momentum` means the same in all three: the weight of the old velocity. Compare batch norm, "
             "where PyTorch's `momentum` is the weight of the new value. Weight decay is coupled L2 in all "
             "three (added to the gradient, then scaled by lr with it) and reaches every parameter handed to "
             "the optimizer. In optax the order of a chain is the order of the maths."),
    Topic(
        "float64", "float64: proving a port", "one 1e-10 bound and no excuses, and the broken ports it catches",
        rows=(
            Row("batch norm's epsilon in a float64 model (given 1e-5)", "float64: 1e-5 as given",
                "a float32 attribute: computes with 9.99999974738e-06", "float64: 1e-5 as given",
                "tests/guide/test_proving.py::test_bn_epsilon_in_a_float64_model"),
            Row("fp64 parity with that 1e-5 unrounded (eval, train; resnet18's structure at 1/4 widths, "
                "one block per stage, 32 px, batch 2)", "pass", "FAIL: train-mode layer4 leaves the 1e-10 "
                "bound (2 values per channel amplify the epsilon's rounding); fp64 runs therefore use 1e-5 "
                "rounded to float32 in every framework and the oracle", "pass",
                "tests/guide/test_proving.py::test_an_unrounded_epsilon_in_fp64_parity"),
        ),
        note="In float32 a ResNet is ill-conditioned enough that parity needs excuses: conditioning floors "
             "(train-mode resnet50's layer4 moves by 1.6e-5 when its weights move by one float32 ulp) and a "
             "backward that follows each framework's ReLU branch near zero, and an excuse can hide a real bug. "
             "In float64 all three frameworks compute on the CPU, and a correct port is the same function as "
             "the float64 NumPy oracle to about 1e-12, so `parity --dtype fp64` drops every excuse: one bound, "
             "1e-10 relative, for every stage output, running statistic, gradient, parameter and momentum "
             "buffer, against the oracle and between every pair; SGD trajectories run free; ReLU flips are "
             "counted, never followed. Constants Paddle keeps as float32 even in a float64 model (batch norm's "
             "epsilon and momentum, the SGD coefficients) are first made float32-exact for everyone. `parity` "
             "without arguments ends with such a proof, kept small (a quarter of each preset's widths, 64 px, "
             "batch 2, one SGD step): a second step starts from parameters that correct ports round "
             "differently (~1e-13), and train-mode batch norm over few values per channel amplifies that "
             "(resnet50 at a quarter of its widths left the oracle by 2.2e-10 to 4.9e-10 at step 2, in every "
             "framework alike, with no ReLU input on the other branch). The table is the catalogue of broken "
             "ports (docs/catalogue.md): each bug planted in one framework, where the fp64 check names it "
             "(check/quantity) while the other frameworks pass, what the default fp32 check says of it, and "
             "where `parity --model` names the same bug written into a port a user wrote (in its own names).",
        table=_catalogue_table(),
        table_proof="tests/parity/test_catalogue.py"),
    Topic(
        "compilation", "Compilation: torch.compile, paddle.jit.to_static, jax.jit", "what the first call costs",
        rows=(
            Row("compile", "`torch.compile(model)`", "`paddle.jit.to_static(model)`", "`jax.jit(model.apply)`",
                "tests/guide/test_compilation.py::test_first_call_compiles"),
            Row("the first call", "TorchDynamo captures the graph, then the backend compiles it",
                "with `full_graph=True` (as here), dy2static converts the Python source into a static program; "
                "the default, SOT, translates the bytecode instead",
                "traces to a jaxpr, then XLA compiles it", "tests/guide/test_compilation.py::test_first_call_compiles"),
            Row("the model passed in", "unchanged: a new wrapper is returned",
                "converted in place: the same layer is returned", "unchanged: a new function is returned",
                "tests/guide/test_compilation.py::test_what_compilation_returns"),
            Row("a new input shape", "one recompile that marks the size dynamic, then reused",
                "`full_graph=True`: a new program per shape; the default SOT: one retranslation that makes the "
                "batch dynamic, then reused", "a new trace and compile per shape",
                "tests/guide/test_compilation.py::test_new_shapes_recompile"),
        ),
        code=_each("frameworks.{fw}.demos", "compile_model"),
        note="Only the first call pays, and it pays again for every new input shape (JAX, Paddle with "
             "`full_graph=True`) or for the first change of shape (PyTorch and Paddle's default SOT, which then "
             "reuse a dynamic-shape graph). Benchmarks must "
             "therefore warm up with the exact shapes they time. PyTorch's default backend, Inductor, "
             "generates and compiles code on that first call. Measured in a fresh process per framework with "
             "an empty Inductor cache (eager call = the uncompiled model's steady state):",
        measured=True),
    Topic(
        "mixed-precision", "Mixed precision", "autocast contexts vs array dtypes",
        rows=(
            Row("mechanism", "`torch.autocast(device, dtype=torch.bfloat16)` context",
                "`paddle.amp.auto_cast(dtype='bfloat16')` context",
                "no autocast: cast the arrays, or `dtype=jnp.bfloat16` on modules",
                "tests/guide/test_mixed_precision.py::test_bf16_paths"),
            Row("on this CPU", "convolutions and matmuls run in bf16",
                "no effect: `auto_cast` warns and switches itself off on any place but CUDA, XPU or a custom "
                "device; float32 throughout", "runs in bf16",
                "tests/guide/test_mixed_precision.py::test_bf16_paths"),
            Row("parameters", "stay float32", "stay float32", "stay float32; the cast copy is bf16",
                "tests/guide/test_mixed_precision.py::test_bf16_paths"),
        ),
        code=_each("frameworks.{fw}.demos", "bf16_logits"),
        note="bf16 keeps float32's range with 7 stored mantissa bits (8 with the implicit leading bit; unit "
             "round-off 2⁻⁸ = 3.9e-3; TF32 stores 10, float32 23); through a whole ResNet "
             "that becomes an error of the order of 1e-2 at the logits, which is why common/tolerance.py scales "
             "its bf16 tolerances. Measured on the bench model:",
        measured=True),
    Topic(
        "tf32", "TF32 defaults on GPUs", "who rounds float32 matmuls and convolutions to 10 stored mantissa bits",
        rows=(
            Row("matmul", "`torch.backends.cuda.matmul.allow_tf32` is False",
                "GPU builds: on (`paddle.base.core.get_cublas_switch()`; not checked here)",
                "`jax_default_matmul_precision` is None: XLA's default, TF32 on Ampere and later",
                "tests/guide/test_tf32.py::test_tf32_defaults"),
            Row("convolution", "`torch.backends.cudnn.allow_tf32` is True",
                "GPU builds: on (`paddle.base.core.get_cudnn_switch()`; not checked here)",
                "the same setting as matmul", "tests/guide/test_tf32.py::test_tf32_defaults"),
            Row("the same on a GPU", "as above", "both on", "TF32 on Ampere and later",
                "tests/guide/test_tf32.py::test_tf32_defaults_on_gpu"),
            Row("torch 2.9+ settings", "`torch.backends.cuda.matmul.fp32_precision` ('none' by default) and "
                "`torch.backends.cudnn.conv.fp32_precision` ('tf32'): 'ieee' or 'tf32'; once both APIs "
                "were used, reading `allow_tf32` raises", "—", "—", "tests/guide/test_tf32.py::test_torch_fp32_precision_api"),
            Row("full float32", "set both flags to False",
                "`core.set_cublas_switch(False)`, `core.set_cudnn_switch(False)` in process; or "
                "`NVIDIA_TF32_OVERRIDE=0` before the first GPU op",
                "`jax_default_matmul_precision = 'highest'`",
                "tests/guide/test_tf32.py::test_full_fp32_precision_switches"),
        ),
        code=_each("frameworks.{fw}.demos", "full_fp32_precision"),
        note="TF32 rounds the inputs of matmuls and convolutions to a 10-bit mantissa (unit round-off 4.9e-4, "
             "against 6e-8 for float32), far above the 1e-5 tolerance of an fp32 parity check, so parity runs "
             "switch it off in every framework. Paddle's GPU builds start with both switches on (its own L-BFGS "
             "warns about it and names NVIDIA_TF32_OVERRIDE=0); the CPU wheel has the switches but no kernel "
             "that reads them. torch 2.9 added the `fp32_precision` settings beside the `allow_tf32` flags; "
             "use one API or the other (this repository sets `allow_tf32`). The torch and JAX defaults are "
             "read from a fresh process on this CPU machine; the Paddle GPU defaults and every effect on a "
             "GPU are tested only where a GPU is present (`gpu` tests, skipped here)."),
    Topic(
        "determinism", "Determinism switches", "global seeds vs explicit keys, deterministic kernels",
        rows=(
            Row("seeding", "`torch.manual_seed(s)`: one global generator", "`paddle.seed(s)`: one global generator",
                "`jax.random.key(s)`, passed to `init`",
                "tests/guide/test_determinism.py::test_seeded_init_is_reproducible"),
            Row("another draw before building", "changes the weights", "changes the weights",
                "cannot happen: keys are explicit",
                "tests/guide/test_determinism.py::test_global_generators_are_shared"),
            Row("deterministic kernels", "`torch.use_deterministic_algorithms(True)`, off by default",
                "`FLAGS_cudnn_deterministic`, GPU builds only",
                "`--xla_gpu_deterministic_ops=true` in `XLA_FLAGS`",
                "tests/guide/test_determinism.py::test_deterministic_switches"),
        ),
        code=_each("frameworks.{fw}.demos", "seeded_model", "deterministic_kernels"),
        note="A fixed seed gives the same initial weights run after run in all three; on GPUs, atomics in some "
             "reductions and autotuned kernel choices can still vary between runs, which is what the kernel "
             "switches address. The same initial weights across frameworks is a different problem, solved by "
             "porting one set of weights rather than by seeds."),
    Topic(
        "block", "The residual block, side by side", "BasicBlock / Bottleneck in the three frameworks (--arch)",
        rows=(
            Row("class", "`{block}`", "`{block}`", "`{block}`", "tests/guide/test_block.py::test_block_structure"),
            Row("conv + BN pairs", "`convK` + `bnK`, K from 1",
                "`convK`: ConvBNLayer(`_conv`, `_batch_norm`), K from 0", "`convK` + `bnK`, K from 1",
                "tests/guide/test_block.py::test_block_structure"),
            Row("projection shortcut", "`downsample`: Sequential(1x1 conv, BN)", "`short`: ConvBNLayer (1x1)",
                "`downsample_conv` + `downsample_bn`", "tests/guide/test_block.py::test_block_structure"),
            Row("stride sits on", "{stride}", "{stride}", "{stride}", "tests/guide/test_block.py::test_block_structure"),
        ),
        code={"torch": (Code("frameworks.torch.model", "{block}"),),
              "paddle": (Code("frameworks.paddle.model", "ConvBNLayer"), Code("frameworks.paddle.model", "{block}")),
              "flax": (Code("frameworks.flax.model", "{block}"), Code("frameworks.flax.model", "_shortcut"))},
        note="The same block three times: the classes and the source they are read from depend on the "
             "architecture (`explain block --arch resnet18` shows BasicBlock).",
        per_block=True),
    Topic(
        "variants", "ResNet variants and their names", "v1 vs v1.5, ResNet-C/D and vd, and what torchvision, timm, "
        "Hugging Face, paddle.vision, PaddleClas and the classic Paddle source call each layer",
        rows=(
            Row("a bottleneck's stride sits on", "the 3x3 (v1.5) in torchvision and timm; Hugging Face: the 3x3 by "
                "default (`downsample_in_bottleneck=False`), the first 1x1 (v1) with `True`",
                "the 3x3 (v1.5) in paddle.vision, PaddleClas and the classic source (this repository)",
                "the 3x3 (v1.5), this repository", "tests/guide/test_variants.py::test_stride_placement"),
            Row("ResNet-C / ResNet-D", "timm `resnet50c`: deep stem (3x3 convs 32-32-64, the first stride 2); "
                "`resnet50d`: that stem and a 2x2 average pool before a stride-1 shortcut conv; torchvision and "
                "Hugging Face: neither", "PaddleClas `ResNet50_vd` = C + D (timm's `resnet50d`); paddle.vision: "
                "neither", "the presets `resnet18d` ... `resnet152d` (C + D) in all three frameworks",
                "tests/guide/test_variants.py::test_resnet_c_and_d"),
            Row("stem conv, BN", "torchvision, timm: `conv1`, `bn1`; Hugging Face: "
                "`resnet.embedder.embedder.convolution`, `.normalization`",
                "paddle.vision: `conv1`, `bn1`; PaddleClas: `stem.0.conv`, `stem.0.bn`; classic: `conv._conv`, "
                "`conv._batch_norm`", "`conv1`, `bn1`", "tests/guide/test_variants.py::test_peer_names"),
            Row("deep stem (C)", "timm: convs `conv1.0`, `conv1.3`, `conv1.6`; BNs `conv1.1`, `conv1.4`, `bn1`",
                "PaddleClas: `stem.0..2.conv`, `.bn`; classic vd: `conv1_1..3._conv`, `._batch_norm`",
                "convs `conv1_0`, `conv1_3`, `conv1_6`; BNs `conv1_1`, `conv1_4`, `bn1`",
                "tests/guide/test_variants.py::test_peer_names"),
            Row("first block's convs", "torchvision, timm: `layer1.0.conv1..3`; Hugging Face: "
                "`resnet.encoder.stages.0.layers.0.layer.0..2.convolution`",
                "paddle.vision: `layer1.0.conv1..3`; PaddleClas: `blocks.0.conv0..2.conv`; classic: "
                "`bb_0_0.conv0..2._conv`", "`layer1_0/conv1..3`", "tests/guide/test_variants.py::test_peer_names"),
            Row("shortcut conv, BN of `layer2.0`", "torchvision, timm: `downsample.0`, `.1`; timm ResNet-D: "
                "`downsample.1`, `.2` (`downsample.0` is the pool); Hugging Face: "
                "`resnet.encoder.stages.1.layers.0.shortcut.convolution`, `.normalization`",
                "paddle.vision: `layer2.0.downsample.0`, `.1`; PaddleClas (plain and vd): `blocks.3.short.conv`, "
                "`.bn`, blocks numbered across stages; classic (plain and vd): `bb_1_0.short._conv`, "
                "`._batch_norm`", "`layer2_0/downsample_conv`, `downsample_bn`, pooled or not",
                "tests/guide/test_variants.py::test_peer_names"),
            Row("classifier", "torchvision, timm: `fc`; Hugging Face: `classifier.1` (`classifier.0` flattens)",
                "paddle.vision, PaddleClas: `fc` (weight `[in, out]`); classic: `out`", "`fc` (kernel `[in, out]`)",
                "tests/guide/test_variants.py::test_peer_names"),
        ),
        code={
            "torch": (Code("frameworks.torch.model", "_stem"), Code("frameworks.torch.model", "_downsample"),
                      Code("common.rules", "_hf_module")),
            "paddle": (Code("frameworks.paddle.model", "ConvBNLayer.__init__", "is_vd_mode"),
                       Code("frameworks.paddle.model", "ConvBNLayer.forward"),
                       Code("frameworks.paddle.model", "ResNet.__init__", "conv1_"),
                       Code("common.rules", "_paddleclas_module")),
            "flax": (Code("frameworks.flax.model", "_shortcut"),
                     Code("frameworks.flax.model", "ResNet.__call__", "stem_convs")),
        },
        note="torchvision's Bottleneck puts the stride on the 3x3 conv, which became known as ResNet v1.5; the "
             "original paper's v1 strides the first 1x1, which of the libraries here only Hugging Face builds (its config's "
             "`downsample_in_bottleneck`). Neither changes a tensor's shape, so the weights cannot tell them "
             "apart: `convert` refuses a Hugging Face config that asks for v1. ResNet-C and -D come from the "
             "\"Bag of Tricks\" paper (He et al. 2019): C replaces the 7x7 stem by three 3x3 convs, D moves a "
             "strided shortcut's stride into a 2x2 average pool so the 1x1 conv sees every pixel; Paddle's "
             "\"vd\" is both. The classic Paddle names are this repository's Paddle model (the classic source's "
             "ConvBNLayer and `bb_{stage}_{i}`); timm's names are canonical here, and common/rules.py maps every "
             "other column to them (`resnet-rosetta convert --to timm|hf|paddleclas|paddle-vision`)."),
    Topic(
        "data-parallel", "Data parallel and batch norm", "each engine's replicas, gradients and batch statistics",
        rows=(
            Row("engine", "`DistributedDataParallel`, one process per replica",
                "`paddle.DataParallel`, one process per replica",
                "`jax.jit` over a `Mesh` (batch `NamedSharding`), or `jax.shard_map`; N devices, one process",
                "tests/guide/test_data_parallel.py::test_engines_and_backends"),
            Row("on CPU, over", "gloo", "gloo", "XLA's CPU collectives",
                "tests/guide/test_data_parallel.py::test_engines_and_backends"),
            Row("gradients", "all-reduced as the mean of the replicas'", "all-reduced as the mean of the replicas'",
                "the mean: jit differentiates the global mean loss; shard_map, the `pmean`'d loss",
                "tests/guide/test_data_parallel.py::test_gradients_are_averaged"),
            Row("train-mode batch norm normalises with", "each replica's own shard", "each replica's own shard",
                "jit: the whole global batch (XLA partitions the reductions); shard_map: each device's shard",
                "tests/guide/test_data_parallel.py::test_batch_norm_normalises_with"),
            Row("running statistics", "rank 0's copied to every replica before each forward "
                "(`broadcast_buffers=True`), then each updates from its shard: replicas differ",
                "each replica keeps its own: replicas differ",
                "jit: one set from the global batch; shard_map (this suite's code): the replicas' `pmean`",
                "tests/guide/test_data_parallel.py::test_running_statistics_kept"),
            Row("SyncBatchNorm on CPU", "none: `SyncBatchNorm expected input tensor to be on GPU` (GPU and nccl "
                "only)", "none: no CPU kernel for `sync_batch_norm` (GPU only)",
                "available without asking: under jit the statistics are the global batch's",
                "tests/guide/test_data_parallel.py::test_sync_batch_norm_on_cpu"),
        ),
        code={"torch": (Code("frameworks.torch.parallel", "_replica"),),
              "paddle": (Code("frameworks.paddle.parallel", "_replica"),),
              "flax": (Code("frameworks.flax.parallel", "_local_step"),)},
        note="Every engine averages gradients, so N replicas at batch b take the same SGD step as one device "
             "at batch N x b only when batch norm is global: torch and Paddle normalise each shard by itself "
             "(per-replica statistics, noisier at small per-replica batches), and their replicas end with "
             "different running statistics, so which replica's checkpoint is saved matters (rank 0's, by "
             "convention). Under `jit` JAX computes the global batch's statistics, SyncBatchNorm without "
             "asking. Measured on 2 CPU replicas by `parity --checks dp --data-parallel 2` (docs/parity.md)."),
    Topic(
        "pitfalls", "Pitfalls at a glance", "every naive port and how wrong it is, measured",
        note="Each naive port runs this repository's model with one convention ignored; the correct port is "
             "the model as shipped. Errors are relative to the float64 oracle's largest magnitude (logits "
             "in eval mode, running statistics after one train-mode step); the claim column is the bound "
             "the test asserts, the tolerance column the one the shipped port meets.",
        measured=True),
)


def get_topic(name: str) -> Topic:
    for topic in TOPICS:
        if topic.name == name:
            return topic
    raise UserError(f"unknown topic {name!r}; topics: {', '.join(t.name for t in TOPICS)}")
