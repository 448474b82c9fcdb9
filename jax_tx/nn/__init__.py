"""Shared building blocks of the JAX twin (mirrored one-to-one in torch_ref/nn)."""
