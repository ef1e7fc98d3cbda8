"""One checkpoint in one framework on one input file: what `resnet-rosetta forward` runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_rosetta.common.atomic import atomic_path, check_writable
from resnet_rosetta.common.canonical import as_float32
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.inputs import load_batch
from . import load
from .weights import read_weights


def forward_file(framework: str, weights_path: str, input_path: str, output_path: str, arch: str | None = None,
                 stages: bool = False) -> str:
    """Eval-mode logits (or, with `stages`, every named stage output as an .npz) of the NCHW batch
    in `input_path`, written atomically to `output_path`; a one-line summary."""
    out_ext = ".npz" if stages else ".npy"
    if Path(output_path).suffix.lower() != out_ext:
        raise UserError(f"{output_path}: expected a {out_ext} output path"
                        + (" (--stages writes an .npz)" if stages else ""))
    check_writable(output_path)
    weights, spec, _ = read_weights(weights_path, arch)
    x = load_batch(input_path, spec.in_channels)
    outputs = load(framework).Adapter(spec, as_float32(weights)).forward(x, train=False)
    with atomic_path(output_path) as tmp:
        with open(tmp, "wb") as f:
            if stages:
                np.savez(f, **outputs)
            else:
                np.save(f, outputs["logits"])
    return f"{framework} {spec.name}: {x.shape} -> {output_path}"
