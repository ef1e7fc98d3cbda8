"""PyTorch native checkpoints: a state_dict in `.pt` / `.pth`, read with weights_only=True."""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from resnet_rosetta.common.atomic import atomic_path
from resnet_rosetta.common.errors import UserError, note

EXTENSIONS = (".pt", ".pth")


WRAPPERS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "ema", "model_ema")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def read_native(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """state_dict -> flat NumPy dict; never unpickles anything but tensors and containers.

    A training checkpoint's wrapper (`{"model_state_dict": sd, "optimizer": ...}` and the others in
    WRAPPERS) and a DDP `module.` prefix are taken off with a note; bfloat16 becomes float32 (exact);
    float8, quantized and sparse tensors are refused by name."""
    try:
        with warnings.catch_warnings():  # torch's deprecation remarks (quantized, sparse) are not the user's concern
            warnings.simplefilter("ignore")
            obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, corrupt or unsafe files
        reason = " ".join(_ANSI.sub("", str(exc)).split()) or type(exc).__name__
        raise UserError(f"{path}: not a loadable torch state_dict ({reason})") from None
    obj = _unwrap(obj, path)
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{path}: expected a state_dict (name -> tensor), found {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise UserError(f"{path}: key {key}: expected a tensor, found {type(value).__name__}")
    keys = list(obj)
    if all(isinstance(k, str) and k.startswith("module.") for k in keys):
        obj = {k[len("module."):]: v for k, v in obj.items()}
        note(f"{path}: took the DDP prefix 'module.' off every key")
    out = {str(k): _to_numpy(v, k, path) for k, v in obj.items()}
    widened = [k for k, v in obj.items() if v.dtype == torch.bfloat16]
    if widened:
        note(f"{path}: {len(widened)} bfloat16 tensors widened to float32 (exact; NumPy has no bfloat16)")
    return out


def _unwrap(obj: object, path: str | os.PathLike[str]) -> object:
    """The state dict inside a training checkpoint's wrapper, with a note naming what was taken."""
    for _ in range(3):
        if not isinstance(obj, dict) or all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        found = next((w for w in WRAPPERS if isinstance(obj.get(w), dict)), None)
        if found is None:
            return obj
        others = [str(k) for k in obj if k != found]
        note(f"{path}: took the state dict under {found!r}"
             + (f" (ignored: {', '.join(others[:6])}{' ...' if len(others) > 6 else ''})" if others else ""))
        obj = obj[found]
    return obj


def _to_numpy(value: torch.Tensor, key: object, path: str | os.PathLike[str]) -> np.ndarray:
    if value.layout != torch.strided:
        raise UserError(f"{path}: key {key}: sparse tensor ({value.layout}) is not supported; store it dense")
    if value.is_quantized:
        raise UserError(f"{path}: key {key}: quantized tensor ({value.dtype}) is not supported; dequantize it first")
    if value.dtype == torch.bfloat16:
        return value.detach().cpu().float().numpy()
    if value.dtype.is_floating_point and value.dtype not in (torch.float16, torch.float32, torch.float64):
        raise UserError(f"{path}: key {key}: dtype {str(value.dtype).replace('torch.', '')} cannot be converted "
                        "(expected float16, bfloat16, float32 or float64)")
    try:
        return value.detach().cpu().numpy()
    except (TypeError, RuntimeError) as exc:
        raise UserError(f"{path}: key {key}: dtype {str(value.dtype).replace('torch.', '')} cannot be converted "
                        f"({' '.join(str(exc).split())})") from None


def to_state_dict(native: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """torchvision-loadable state_dict; BN layers get `num_batches_tracked = 0` (not in canonical)."""
    state: dict[str, torch.Tensor] = {}
    for key, arr in native.items():
        state[key] = torch.from_numpy(np.array(arr, order="C"))  # a copy: read-only arrays warn
        if key.endswith(".running_var"):
            state[key[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return state


def write_native(path: str | os.PathLike[str], native: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        torch.save(to_state_dict(native), tmp)
