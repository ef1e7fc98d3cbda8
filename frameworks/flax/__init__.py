"""Flax (JAX) implementation: linen, NHWC, explicit padding, `params` + `batch_stats` collections."""
