"""Shared building blocks of the PyTorch twin (mirroring jax_tx/nn one-to-one)."""
