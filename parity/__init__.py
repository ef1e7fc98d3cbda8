"""Parity engine: every framework and a float64 oracle on the same weights and inputs."""
