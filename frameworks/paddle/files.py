"""Paddle native checkpoints: `.pdparams`, read through the restricted unpickler (no Paddle needed)."""
from resnet_rosetta.common.pdparams import EXTENSION, read_pdparams as read_native, write_pdparams as write_native

EXTENSIONS = (EXTENSION,)
__all__ = ["EXTENSIONS", "read_native", "write_native"]
