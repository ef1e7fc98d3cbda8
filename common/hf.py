"""Hugging Face transformers' ResNet: a `save_pretrained` folder (config.json + model.safetensors),
read and written without transformers. Names and layouts are the rule table's "hf" format.

The config maps to the spec: layer_type -> block, depths, hidden_sizes -> widths (times the
expansion), embedding_size -> stem_width, num_channels -> in_channels, id2label -> num_classes and
the labels kept in the canonical header. Two config fields move strides where the weights cannot
show it: `downsample_in_first_stage` (a strided first stage) and `downsample_in_bottleneck` (v1:
the stride on the first 1x1 conv); the spec has neither (it is v1.5: stride on the 3x3), so a
config that sets them is refused. A bare model.safetensors is read as their defaults (false).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from .canonical import Weights, read_safetensors
from .errors import UserError
from .inference import named
from .spec import EXPANSION, ResNetSpec

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def spec_from_config(config: object, source: str) -> tuple[ResNetSpec, list[str] | None]:
    """(spec, class names) of a ResNet config.json's contents; a one-line refusal naming the field otherwise."""
    if not isinstance(config, dict):
        raise UserError(f"{source}: expected a JSON object, found {type(config).__name__}")
    if config.get("model_type") != "resnet":
        raise UserError(f"{source}: model_type is {config.get('model_type')!r}, expected 'resnet'")
    for field in ("downsample_in_first_stage", "downsample_in_bottleneck"):
        if config.get(field, False):
            raise UserError(f"{source}: {field} is true: the spec strides only the 3x3 conv of the first block "
                            "of stages 2 and later (ResNet v1.5), so this network cannot be expressed")
    if config.get("hidden_act", "relu") != "relu":
        raise UserError(f"{source}: hidden_act is {config.get('hidden_act')!r}, expected 'relu'")
    block = config.get("layer_type", "bottleneck")
    if not isinstance(block, str) or block not in EXPANSION:
        raise UserError(f"{source}: layer_type is {block!r}, expected 'basic' or 'bottleneck'")
    hidden = config.get("hidden_sizes", [256, 512, 1024, 2048])
    if not isinstance(hidden, list) or not all(_is_int(h) and h % EXPANSION[block] == 0 for h in hidden):
        raise UserError(f"{source}: hidden_sizes {hidden!r}: expected integers divisible by {EXPANSION[block]} "
                        f"({block} blocks)")
    depths = config.get("depths", [3, 4, 6, 3])
    if not isinstance(depths, list) or not all(_is_int(d) for d in depths):
        raise UserError(f"{source}: depths {depths!r}: expected a list of integers")
    labels = _labels(config.get("id2label"), source)
    classes = len(labels) if labels else config.get("num_labels", 2)
    for field, value in (("num_labels", classes), ("embedding_size", config.get("embedding_size", 64)),
                         ("num_channels", config.get("num_channels", 3))):
        if not _is_int(value):
            raise UserError(f"{source}: {field} is {value!r}, expected an integer")
    fields = {"block": block, "depths": tuple(depths), "widths": tuple(h // EXPANSION[block] for h in hidden),
              "stem_width": config.get("embedding_size", 64), "in_channels": config.get("num_channels", 3),
              "num_classes": classes}
    try:
        spec = ResNetSpec("resnet", **fields)  # type: ignore[arg-type]
    except (UserError, TypeError) as exc:
        raise UserError(f"{source}: {exc}") from None
    return named(spec)[0], labels


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _labels(id2label: object, source: str) -> list[str] | None:
    """The class names of `id2label` ({"0": name, ...}) in index order; None when absent."""
    if id2label is None:
        return None
    if not isinstance(id2label, dict) or set(id2label) != {str(i) for i in range(len(id2label))}:
        raise UserError(f"{source}: id2label must map the indices 0..N-1 (as strings) to names, found "
                        f"{str(id2label)[:80]}")
    return [str(id2label[str(i)]) for i in range(len(id2label))]


def config_for(spec: ResNetSpec, labels: list[str] | None) -> dict[str, object]:
    """The config.json of `spec` for ResNetForImageClassification (labels LABEL_i when none are known)."""
    names = labels if labels and len(labels) == spec.num_classes else [f"LABEL_{i}" for i in range(spec.num_classes)]
    return {"architectures": ["ResNetForImageClassification"], "model_type": "resnet",
            "layer_type": spec.block, "depths": list(spec.depths),
            "hidden_sizes": [w * spec.expansion for w in spec.widths], "embedding_size": spec.stem_width,
            "num_channels": spec.in_channels, "hidden_act": "relu", "downsample_in_first_stage": False,
            "downsample_in_bottleneck": False, "id2label": {str(i): n for i, n in enumerate(names)},
            "label2id": {n: i for i, n in enumerate(names)}}


def read_folder(path: Path) -> tuple[Weights, ResNetSpec, list[str] | None]:
    """(native tensors, spec from the config, class names) of a save_pretrained folder."""
    config_path, weights_path = path / CONFIG, path / WEIGHTS
    if not config_path.is_file():
        raise UserError(f"{path}: a folder without {CONFIG}; expected a Hugging Face save_pretrained folder")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{config_path}: not readable JSON ({' '.join(str(exc).split())})") from None
    spec, labels = spec_from_config(config, str(config_path))
    if not weights_path.is_file():
        raise UserError(f"{path}: no {WEIGHTS} beside {CONFIG} (only safetensors weights are read)")
    native, _ = read_safetensors(weights_path)
    return native, spec, labels


def check_folder(path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse, before any work, an output folder that exists and is not empty (unless `overwrite`) or a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder; --to hf writes a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UserError(f"{path}: folder exists and is not empty; pass --overwrite to replace it")


def write_folder(path: str | os.PathLike[str], native: Mapping[str, np.ndarray], config: dict[str, object],
                 overwrite: bool) -> None:
    """config.json + model.safetensors (BN counters as zeros, as torch keeps them), built in a temporary
    folder beside `path` and moved into place only when complete."""
    from safetensors.numpy import save

    path = Path(path)
    check_folder(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, arr in native.items():
        tensors[key] = np.ascontiguousarray(arr)
        if key.endswith(".running_var"):
            tensors[key[: -len("running_var")] + "num_batches_tracked"] = np.zeros((), np.int64)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / WEIGHTS).write_bytes(save(tensors, metadata={"format": "pt"}))
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
