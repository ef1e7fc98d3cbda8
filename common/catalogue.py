"""The catalogue of broken ports, as data: each entry a small deliberate bug a real port makes, planted
in one framework, with where the fp64 parity check must name it (check/quantity) and what the default
fp32 check says of it. tests/parity/test_catalogue.py plants every bug (its catalogue_bugs.py), in our
port and written into a user-style port checked through `parity --model`, and asserts every entry; docs/catalogue.md and the guide's topic "float64: proving a port" show them.
"""
from __future__ import annotations

from dataclasses import dataclass

FORWARD, TRAINING = ("eval", "train"), ("step", "steps")


@dataclass(frozen=True)
class Entry:
    bug: str  # its plant in catalogue_bugs.py
    framework: str
    what: str  # the bug, in words
    planted: str  # where: the framework's own function, this project's model or trainer, the converter
    checks: tuple[str, ...]
    fp64: str  # the expected first divergence of the fp64 check: "check/quantity"
    fp32: str  # what the fp32 check says: "pass", "FAIL at check/quantity", "conditioning-limited at ..."
    config: str = "resnet18"
    yours: str = ""  # through `parity --model`, the first divergence in the user-style port's own names

    @property
    def through_model(self) -> str:
        """What `parity --model` says of the same bug written into a user-style port (tests/parity/
        user_models/): the fp64 first divergence, in the port's own names where they differ."""
        return f"FAIL at {self.fp64}" + (f" (yours: {self.yours})" if self.yours else "")


CATALOGUE = [
    Entry("torch_bn_train_eps", "torch", "BN epsilon 1e-3 in train mode only (1e-5 in eval)",
          "torch.nn.functional.batch_norm", FORWARD, "train/stem", "FAIL at train/stem", yours="input of layer1.0"),
    Entry("torch_bn_train_eps_one_layer", "torch", "BN epsilon 1e-4 in train mode only, in layer4.0.bn2 only",
          "model instance", FORWARD, "train/layer4", "FAIL at train/layer4", yours="output of layer4.0"),
    Entry("torch_bn_unbiased_norm", "torch", "train-mode BN normalises with the unbiased batch variance",
          "torch.nn.functional.batch_norm", FORWARD, "train/stem", "FAIL at train/stem", yours="input of layer1.0"),
    Entry("torch_bn_per_sample_axes", "torch", "BN statistics reduced over (H, W) per sample, not (N, H, W)",
          "torch.nn.functional.batch_norm", FORWARD, "train/stem", "FAIL at train/stem", yours="input of layer1.0"),
    Entry("torch_bn_detached_stats", "torch", "no gradient through the batch statistics of layer3.0.bn1",
          "model instance", ("grad",), "grad/layer3.0.conv1.weight", "FAIL at grad/layer3.0.conv1.weight"),
    Entry("torch_maxpool_unpadded", "torch", "stem max-pool unpadded, ceil mode (same shape, shifted windows)",
          "model instance", FORWARD, "eval/stem", "FAIL at eval/stem", yours="input of layer1.0"),
    Entry("torch_downsample_offset", "torch", "downsample samples the odd pixels (offset 1)",
          "model instance", FORWARD, "eval/layer2", "FAIL at eval/layer2", yours="output of layer2.0"),
    Entry("torch_sgd_nesterov", "torch", "SGD with Nesterov momentum", "torch.optim.SGD", TRAINING,
          "step/conv1.weight", "FAIL at step/conv1.weight"),
    Entry("torch_sgd_dampening", "torch", "SGD dampening = momentum (Lua torch's default)", "torch.optim.SGD",
          TRAINING, "steps/step2.params", "FAIL at steps/step2.params"),
    Entry("torch_sgd_lr_one_percent_low", "torch", "learning rate 1% low", "torch.optim.SGD", TRAINING,
          "step/conv1.weight", "FAIL at step/conv1.weight"),
    Entry("torch_momentum_not_carried", "torch", "momentum buffers not carried across steps (a new optimizer "
          "every step)", "trainer class", TRAINING, "steps/step2.params", "FAIL at steps/step2.params"),
    Entry("torch_running_stats_not_carried", "torch", "running statistics not carried across steps (restored "
          "after each)", "trainer class", TRAINING, "step/bn1.running_mean", "FAIL at step/bn1.running_mean"),
    Entry("paddle_bn_eps_one_layer", "paddle", "BN epsilon 1e-4 in layer3.0.bn1 only", "model instance", FORWARD,
          "eval/layer3", "FAIL at eval/layer3", yours="output of layer3.0"),
    Entry("paddle_bn_keras_eps", "paddle", "BN epsilon 1.001e-5 everywhere (keras.applications' ResNet)",
          "Paddle's batch_norm (as paddle.nn.layer.norm imports it)", FORWARD, "eval/stem", "pass",
          yours="input of layer1.0"),
    Entry("paddle_bn_momentum_torch_convention", "paddle", "BN momentum 0.1 passed as Paddle's momentum "
          "(which weighs the old value)", "model instance", FORWARD, "train/bn1.running_mean",
          "FAIL at train/bn1.running_mean", yours="bn1._mean"),
    Entry("paddle_bn_biased_running_var", "paddle", "running variance fed the biased batch variance",
          "model instance", FORWARD, "train/bn1.running_var", "FAIL at train/bn1.running_var", yours="bn1._variance"),
    Entry("paddle_stride_on_1x1", "paddle", "bottleneck stride on the first 1x1, not the 3x3 (ResNet v1 vs v1.5)",
          "model class", FORWARD, "eval/layer2", "FAIL at eval/layer2", "resnext", yours="output of layer2.0"),
    Entry("paddle_groups_interleaved", "paddle", "grouped conv sees its groups' channels interleaved, not "
          "contiguous", "model class", FORWARD, "eval/layer1", "FAIL at eval/layer1", "resnext",
          yours="output of layer1.0"),
    Entry("paddle_downsample_avg_pool", "paddle", "downsample: 2x2 average pool + stride-1 1x1 (the vd shortcut) "
          "where a strided 1x1 belongs", "model class", FORWARD, "eval/layer2", "FAIL at eval/layer2",
          yours="output of layer2.0"),
    Entry("paddle_linear_untransposed", "paddle", "Linear weight not transposed ([out, in] loaded as [in, out])",
          "converter rule", FORWARD, "eval/logits", "FAIL at eval/logits", yours="the model's output"),
    Entry("paddle_no_weight_decay", "paddle", "weight decay missing", "paddle.optimizer.Momentum", TRAINING,
          "step/conv1.weight", "FAIL at step/conv1.weight"),
    Entry("paddle_no_decay_on_bn_and_bias", "paddle", "no weight decay on BN parameters and biases (timm-style "
          "groups) where every parameter decays", "paddle.optimizer.Momentum", TRAINING, "step/bn1.weight",
          "FAIL at step/bn1.weight"),
    Entry("paddle_momentum_one_minus", "paddle", "SGD momentum 0.1 (1 - m, BN's convention carried over)",
          "paddle.optimizer.Momentum", TRAINING, "steps/step2.params", "FAIL at steps/step2.params"),
    Entry("flax_same_padding", "flax", "'SAME' conv padding (pads 0, 1 at stride 2)", "flax.linen.Conv",
          ("eval",), "eval/stem", "FAIL at eval/stem", yours="input of layer1_0"),
    Entry("flax_kernel_hw_swapped", "flax", "conv kernel transposed with H and W swapped (OIHW -> WHIO)",
          "converter rule", ("eval",), "eval/stem", "FAIL at eval/stem", yours="input of layer1_0"),
    Entry("flax_bn_default_momentum", "flax", "BN momentum 0.99 (linen's default; torch's 0.1 is 0.9 there)",
          "model class", ("train",), "train/bn1.running_mean", "FAIL at train/bn1.running_mean",
          yours="batch_stats/bn1/mean"),
    Entry("flax_linen_batch_norm", "flax", "flax.linen.BatchNorm: its running variance takes the biased batch "
          "variance", "model class", ("train",), "train/bn1.running_var", "FAIL at train/bn1.running_var",
          yours="batch_stats/bn1/var"),
    Entry("flax_downsample_without_bn", "flax", "downsample without its batch norm", "model function", ("eval",),
          "eval/layer2", "FAIL at eval/layer2", yours="output of layer2_0"),
    Entry("flax_loss_summed", "flax", "loss summed over the batch, not averaged",
          "optax.softmax_cross_entropy_with_integer_labels", ("step",), "step/loss", "FAIL at step/loss"),
]
# What the fp32 check says of each clean framework, over the checks its entries use (fp64: always pass).
CONTROLS = {("resnet18", "torch"): "pass", ("resnet18", "paddle"): "pass",
            ("resnet18", "flax"): "conditioning-limited at train/layer1.0.bn1.running_mean", ("resnext", "paddle"): "pass"}
