"""Canonical weights: torchvision key names and layouts, stored as safetensors with the spec inside.

Conv weights are OIHW, the classifier is `fc.weight [out, in]` + `fc.bias`, batch norm is
`weight, bias, running_mean, running_var`. `num_batches_tracked` is not part of the canonical
schema: it is a PyTorch-only counter that no other framework keeps (the torch converter writes
zeros when it produces a torchvision state_dict).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .atomic import save_safetensors
from .errors import UserError, note
from .spec import ResNetSpec, block_plan, downsample_names, stem_convs

FORMAT_NAME = "resnet-rosetta-canonical"
FORMAT_VERSION = "1"
SUPPORTED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
BN_LEAVES = ("weight", "bias", "running_mean", "running_var")

Weights = dict[str, np.ndarray]


def canonical_modules(spec: ResNetSpec) -> list[tuple[str, str, tuple[int, ...]]]:
    """(module path, kind, weight shape) for every conv, bn and fc module, in execution order.

    kind is "conv", "bn" or "fc"; for bn the shape is (channels,).
    """
    mods: list[tuple[str, str, tuple[int, ...]]] = []
    for c in stem_convs(spec):
        mods += [(c.conv, "conv", (c.out_channels, c.in_channels, c.kernel, c.kernel)),
                 (c.bn, "bn", (c.out_channels,))]
    short_conv, short_bn = downsample_names(spec)
    for b in block_plan(spec):
        p = b.prefix
        if spec.block == "basic":
            mods += [(f"{p}.conv1", "conv", (b.mid_channels, b.in_channels, 3, 3)),
                     (f"{p}.bn1", "bn", (b.mid_channels,)),
                     (f"{p}.conv2", "conv", (b.out_channels, b.mid_channels, 3, 3)),
                     (f"{p}.bn2", "bn", (b.out_channels,))]
        else:
            mods += [(f"{p}.conv1", "conv", (b.mid_channels, b.in_channels, 1, 1)),
                     (f"{p}.bn1", "bn", (b.mid_channels,)),
                     (f"{p}.conv2", "conv", (b.mid_channels, b.mid_channels // spec.groups, 3, 3)),
                     (f"{p}.bn2", "bn", (b.mid_channels,)),
                     (f"{p}.conv3", "conv", (b.out_channels, b.mid_channels, 1, 1)),
                     (f"{p}.bn3", "bn", (b.out_channels,))]
        if b.downsample:
            mods += [(f"{p}.{short_conv}", "conv", (b.out_channels, b.in_channels, 1, 1)),
                     (f"{p}.{short_bn}", "bn", (b.out_channels,))]
    mods.append(("fc", "fc", (spec.num_classes, spec.feature_dim)))
    return mods


def relu_sites(spec: ResNetSpec) -> list[str]:
    """Every ReLU of `spec`, in execution order, named by the canonical module whose output it
    gates: the batch norms followed by a ReLU (the stem's: `bn1`, and `conv1.1`, `conv1.4` in a deep
    stem; `layerS.I.bn1`, and `layerS.I.bn2` in a bottleneck) and each block (`layerS.I`), whose
    output is the ReLU of the residual sum."""
    inner = ("bn1",) if spec.block == "basic" else ("bn1", "bn2")
    sites = [c.bn for c in stem_convs(spec)]
    for b in block_plan(spec):
        sites += [f"{b.prefix}.{bn}" for bn in inner] + [b.prefix]
    return sites


def canonical_shapes(spec: ResNetSpec) -> dict[str, tuple[int, ...]]:
    """Every canonical key and its shape, in execution order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path, kind, shape in canonical_modules(spec):
        if kind == "conv":
            shapes[f"{path}.weight"] = shape
        elif kind == "bn":
            for leaf in BN_LEAVES:
                shapes[f"{path}.{leaf}"] = shape
        else:
            shapes[f"{path}.weight"] = shape
            shapes[f"{path}.bias"] = (shape[0],)
    return shapes


def is_buffer(key: str) -> bool:
    """Running statistics are state, not trainable parameters."""
    return key.endswith(("running_mean", "running_var"))


def check_weights(weights: Mapping[str, np.ndarray], spec: ResNetSpec, source: str) -> None:
    """Strict check against the spec: names every missing, unexpected or misshapen key."""
    expected = canonical_shapes(spec)
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys {few_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {few_keys(unexpected)}")
    for key, shape in expected.items():
        if key in weights and tuple(weights[key].shape) != shape:
            problems.append(f"key {key}: expected shape {shape}, found {tuple(weights[key].shape)}")
            break
    if problems:
        raise UserError(f"{source}: does not match {spec.name}: " + "; ".join(problems))
    for key, arr in weights.items():
        if arr.dtype not in SUPPORTED_DTYPES:
            raise UserError(f"{source}: key {key}: unsupported dtype {arr.dtype} "
                            f"(expected one of {', '.join(str(d) for d in SUPPORTED_DTYPES)})")
        if not np.all(np.isfinite(arr)):
            raise UserError(f"{source}: key {key}: contains non-finite values (NaN or Inf)")


def as_float32(weights: Mapping[str, np.ndarray]) -> Weights:
    """The weights as the models compute with them: float32 (fp16 and fp64 files are cast on the way in)."""
    return {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}


def few_keys(keys: list[str], limit: int = 4) -> str:
    """The first few keys of a long list, and how many more there are."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def save_canonical(path: str | os.PathLike[str], weights: Mapping[str, np.ndarray], spec: ResNetSpec,
                   labels: list[str] | None = None) -> None:
    """Write a canonical safetensors file atomically, spec and format version in the header (and the
    class names, when a source had them: Hugging Face's id2label)."""
    check_weights(weights, spec, str(path))
    ordered = {k: np.ascontiguousarray(weights[k]) for k in canonical_shapes(spec)}
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "spec": spec.to_json()}
    if labels is not None:
        import json

        meta["labels"] = json.dumps(list(labels))
    save_safetensors(path, ordered, meta)


def load_labels(path: str | os.PathLike[str]) -> list[str] | None:
    """The class names a canonical file's header keeps, if any (read from the header alone)."""
    import json

    meta = _header(Path(path), "safetensors file")[0].get("__metadata__") or {}
    if "labels" not in meta:
        return None
    try:
        labels = json.loads(meta["labels"])
    except ValueError:
        labels = None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{path}: header labels: expected a JSON list of strings")
    return labels


_NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
                 "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def read_safetensors(path: Path, what: str = "safetensors file") -> tuple[Weights, dict[str, str]]:
    """(tensors, header metadata) of a safetensors file; a damaged one is a user error naming `what`.

    BF16 tensors become float32 (exact: bf16 is the top half of a float32); dtypes NumPy has no type
    for (F8_*, F4, F6_*, ...) and zero-sized tensors are refused by name, from the header alone."""
    from safetensors import SafetensorError, safe_open

    header, data_start = _header(path, what)
    bf16 = []
    for key, entry in header.items():
        if key == "__metadata__" or not isinstance(entry, dict):
            continue
        dtype, shape = entry.get("dtype"), entry.get("shape")
        if dtype == "BF16":
            bf16.append(key)
        elif dtype not in _NUMPY_DTYPES:
            raise UserError(f"{path}: key {key}: dtype {dtype} cannot be read (NumPy has no such type; "
                            "store float16, bfloat16, float32 or float64)")
        if isinstance(shape, list) and 0 in shape:
            raise UserError(f"{path}: key {key}: zero-sized tensor of shape {tuple(shape)}")
    try:
        out: Weights = {}
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            for k in f.keys():
                out[k] = _bf16_as_float32(path, header[k], data_start) if k in bf16 else f.get_tensor(k)
        if bf16:
            note(f"{path}: {len(bf16)} bfloat16 tensors widened to float32 (exact; NumPy has no bfloat16)")
        return out, meta
    except (SafetensorError, OSError, ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{path}: not a readable {what} ({_one_line(exc)})") from None


def _header(path: Path, what: str) -> tuple[dict, int]:
    """The JSON header of a safetensors file and where its data starts; a one-line error if unreadable."""
    import json

    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if size > 100_000_000 or size > path.stat().st_size:
                raise ValueError(f"header length {size} exceeds the file")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable {what} ({_one_line(exc)})") from None
    return header, 8 + size


def _bf16_as_float32(path: Path, entry: dict, data_start: int) -> np.ndarray:
    begin, end = entry["data_offsets"]
    with open(path, "rb") as f:
        f.seek(data_start + begin)
        raw = np.frombuffer(f.read(end - begin), dtype="<u2")
    return (raw.astype("<u4") << 16).view("<f4").reshape(entry["shape"]).astype(np.float32)


def load_canonical(path: str | os.PathLike[str]) -> tuple[Weights, ResNetSpec | None]:
    """Read a safetensors file; returns the tensors and the spec from its header, if it carries one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    weights, meta = read_safetensors(path)
    version = meta.get("format_version")
    if version is not None and version != FORMAT_VERSION:
        raise UserError(f"{path}: canonical format version {version} is not supported (expected {FORMAT_VERSION})")
    spec = ResNetSpec.from_json(meta["spec"], f"{path}: header") if "spec" in meta else None
    return weights, spec


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def random_weights(spec: ResNetSpec, seed: int = 0, dtype: np.dtype = np.float32) -> Weights:
    """Seeded weights with non-trivial BN statistics (never identity), for parity runs and tests.

    Conv weights are He-normal; BN scale, shift, mean and variance are random around 1 / 0 so
    that an eval-mode forward exercises every BN term and a skipped or misnamed tensor shows.
    """
    rng = np.random.default_rng(seed)
    out: Weights = {}
    for key, shape in canonical_shapes(spec).items():
        if key.endswith("running_var"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean") or (key.endswith("bias") and not key.startswith("fc")):
            arr = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1 and not key.startswith("fc"):  # BN scale
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.startswith("fc"):
            bound = 1.0 / np.sqrt(spec.feature_dim)
            arr = rng.uniform(-bound, bound, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            arr = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        out[key] = arr.astype(dtype)
    return out

