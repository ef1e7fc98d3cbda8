"""Parameter count and multiply-accumulates of a spec, as torchvision counts them."""
from __future__ import annotations

from .canonical import canonical_shapes, is_buffer
from .spec import ResNetSpec, block_plan, has_max_pool, stem_convs


def parameter_count(spec: ResNetSpec) -> int:
    """Trainable parameters (conv, BN affine, fc); running statistics excluded, as torchvision counts."""
    total = 0
    for key, shape in canonical_shapes(spec).items():
        if not is_buffer(key):
            n = 1
            for d in shape:
                n *= d
            total += n
    return total


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def macs(spec: ResNetSpec, size: int | None = None) -> int:
    """Multiply-accumulates of convolutions and the classifier for one square image (pooling and
    batch norm not counted, as timm's and torchvision's published figures)."""
    h = spec.input_size if size is None else size
    total = 0
    for c in stem_convs(spec):
        h = _conv_out(h, c.kernel, c.stride, c.padding)
        total += h * h * c.out_channels * c.in_channels * c.kernel * c.kernel
    if has_max_pool(spec):
        h = _conv_out(h, 3, 2, 1)
    for b in block_plan(spec):
        h_out = _conv_out(h, 3, b.stride, 1)
        if spec.block == "basic":
            total += h_out * h_out * b.mid_channels * b.in_channels * 9
            total += h_out * h_out * b.out_channels * b.mid_channels * 9
        else:
            total += h * h * b.mid_channels * b.in_channels
            total += h_out * h_out * b.mid_channels * (b.mid_channels // spec.groups) * 9
            total += h_out * h_out * b.out_channels * b.mid_channels
        if b.downsample:
            total += h_out * h_out * b.out_channels * b.in_channels
        h = h_out
    return total + spec.feature_dim * spec.num_classes
