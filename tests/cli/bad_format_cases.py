"""Bad peer checkpoints as cases for tests/cli/test_bad_input_cases.py (appended to `bad_cases.CASES`):
Hugging Face folders that are not a ResNet, disagree with their weights or have none, an occupied --to hf
folder, timm layers the spec cannot express, PaddleClas files it cannot hold. Built with NumPy only."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from bad_cases import CASES, SPEC, Case, weights
from resnet_rosetta.common import hf, rules
from resnet_rosetta.common.atomic import save_safetensors
from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.pdparams import write_pdparams
from resnet_rosetta.common.spec import ResNetSpec

TINY = ResNetSpec("tiny", "basic", (1, 1), widths=(4, 8), stem_width=4, num_classes=3)
Build = Callable[[Path], tuple[list[str], Path | None]]


def hf_folder(folder: Path, **config: object) -> Path:
    """A save_pretrained-style folder of TINY, its config.json edited by `config`."""
    hf.write_folder(folder, rules.to_native(random_weights(TINY), TINY, "hf"), {**hf.config_for(TINY, None), **config},
                    overwrite=False)
    return folder


def _from(write: Callable[[Path], Path], dst: str = "out.safetensors", *extra: str) -> Build:
    def build(folder: Path) -> tuple[list[str], Path | None]:
        src = write(folder)
        return ["convert", str(src), str(folder / dst), *extra], folder / dst
    return build


def _no_weights(folder: Path) -> Path:
    (hf_folder(folder / "hf") / hf.WEIGHTS).unlink()
    return folder / "hf"


def _hf_onto_folder(folder: Path) -> tuple[list[str], Path | None]:
    save_canonical(folder / "w.safetensors", random_weights(TINY), TINY)
    (folder / "out").mkdir()
    (folder / "out" / "notes.txt").write_text("mine")
    return ["convert", str(folder / "w.safetensors"), str(folder / "out"), "--to", "hf"], folder / "out"


def _deep_to_hf(folder: Path) -> tuple[list[str], Path | None]:
    deep = TINY.replace(stem="deep")
    save_canonical(folder / "d.safetensors", random_weights(deep), deep)
    (folder / "hf").mkdir()  # an empty folder is a fine destination: the spec is what is refused
    return ["convert", str(folder / "d.safetensors"), str(folder / "hf"), "--to", "hf"], folder / "hf"


def _timm(edit: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        native = rules.to_native(weights(), SPEC, "torch")
        edit(native)
        save_safetensors(folder / "timm.safetensors", native, {"format": "pt"})  # timm's own file: no spec inside
        return folder / "timm.safetensors"
    return write


def _paddleclas(edit: Callable[[dict[str, np.ndarray]], None], spec: ResNetSpec = TINY) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        native = rules.to_native(random_weights(spec), spec, "paddleclas")
        edit(native)
        write_pdparams(folder / "clas.pdparams", native)
        return folder / "clas.pdparams"
    return write


def _first_short(native: dict[str, np.ndarray]) -> None:
    native["blocks.0.short.conv.weight"] = np.ones((4, 4, 1, 1), np.float32)
    for leaf in ("weight", "bias", "_mean", "_variance"):
        native[f"blocks.0.short.bn.{leaf}"] = np.ones(4, np.float32)


def _mobilenet(native: dict[str, np.ndarray]) -> None:
    native.clear()
    native.update({"conv.conv.weight": np.ones((8, 3, 3, 3), np.float32), "fc.weight": np.ones((8, 3), np.float32)})


CASES.extend([
    Case("hf-not-resnet", "peer checkpoints", "a Hugging Face folder whose config.json has model_type vit",
         _from(lambda f: hf_folder(f / "hf", model_type="vit")), "model_type is 'vit', expected 'resnet'"),
    Case("hf-v1-stride", "peer checkpoints", "a Hugging Face config with downsample_in_bottleneck true (ResNet v1)",
         _from(lambda f: hf_folder(f / "hf", downsample_in_bottleneck=True)), "downsample_in_bottleneck is true"),
    Case("hf-config-disagrees", "peer checkpoints", "a Hugging Face config whose depths disagree with its weights",
         _from(lambda f: hf_folder(f / "hf", depths=[2, 1])), "hf weights do not match"),
    Case("hf-config-wrong-type", "peer checkpoints", "a Hugging Face config whose depths is not a list",
         _from(lambda f: hf_folder(f / "hf", depths=None)), "depths None: expected a list of integers"),
    Case("hf-config-labels", "peer checkpoints", "a Hugging Face config whose id2label keys are not 0..N-1",
         _from(lambda f: hf_folder(f / "hf", id2label={"cat": "a"})), "id2label must map the indices 0..N-1"),
    Case("hf-no-weights", "peer checkpoints", "a Hugging Face folder without model.safetensors",
         _from(_no_weights), "no model.safetensors beside config.json"),
    Case("hf-folder-taken", "peer checkpoints", "`--to hf` onto an existing non-empty folder without --overwrite",
         _hf_onto_folder, "folder exists and is not empty; pass --overwrite"),
    Case("hf-deep-stem", "peer checkpoints", "`--to hf` of a ResNet-D (Hugging Face has no deep stem)",
         _deep_to_hf, "Hugging Face's ResNet has only the 7x7 stem"),
    Case("timm-squeeze-excitation", "peer checkpoints", "a timm state dict with squeeze-excitation (seresnet)",
         _from(_timm(lambda n: n.update({"layer1.0.se.fc1.weight": np.ones((2, 8, 1, 1), np.float32)}))),
         "unexpected keys layer1.0.se.fc1.weight"),
    Case("timm-group-norm", "peer checkpoints", "a timm state dict with group norm (no running statistics)",
         _from(_timm(lambda n: [n.pop(k) for k in list(n) if "running" in k])), "missing keys bn1.running_mean"),
    Case("paddleclas-first-short", "peer checkpoints", "PaddleClas' ResNet18/34 (and _vd): a 1x1 conv shortcut "
         "in the first block", _from(_paddleclas(_first_short)), "PaddleClas' use_first_short_conv"),
    Case("paddleclas-not-resnet", "peer checkpoints", "a PaddleClas .pdparams of another backbone",
         _from(_paddleclas(_mobilenet)), "holds neither this suite's Paddle names"),
    Case("paddleclas-cannot-hold", "peer checkpoints", "`--to paddleclas` of a net PaddleClas' ResNet cannot build",
         _from(lambda f: save_canonical(f / "t.safetensors", random_weights(TINY), TINY) or f / "t.safetensors",
               "out.pdparams", "--to", "paddleclas"), "PaddleClas' ResNet cannot hold tiny"),
])
