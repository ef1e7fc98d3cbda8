"""PyTorch native checkpoints: a state_dict in `.pt` / `.pth`, read with weights_only=True."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from resnet_rosetta.common.atomic import atomic_path
from resnet_rosetta.common.errors import UserError

EXTENSIONS = (".pt", ".pth")


def read_native(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """state_dict -> flat NumPy dict; never unpickles anything but tensors and containers."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, corrupt or unsafe files
        raise UserError(f"{path}: not a loadable torch state_dict ({' '.join(str(exc).split())[:200]})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: expected a state_dict (name -> tensor), found {type(obj).__name__}")
    return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def to_state_dict(native: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """torchvision-loadable state_dict; BN layers get `num_batches_tracked = 0` (not in canonical)."""
    state: dict[str, torch.Tensor] = {}
    for key, arr in native.items():
        state[key] = torch.from_numpy(np.ascontiguousarray(arr))
        if key.endswith(".running_var"):
            state[key[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return state


def write_native(path: str | os.PathLike[str], native: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        torch.save(to_state_dict(native), tmp)
