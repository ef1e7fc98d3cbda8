"""Framework-neutral core: spec, canonical weights, conversion rules, float64 oracle, tolerances.

Imports only NumPy, safetensors and the standard library.
"""
