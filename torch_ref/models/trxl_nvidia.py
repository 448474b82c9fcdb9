"""NVIDIA's Transformer-XL (twin of jax_tx/trxl_nvidia.py): the trxl layer, post-norm,
longer memory; the differences are the `trxl_nvidia` preset."""

from __future__ import annotations

from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.models.trxl import TrXLLayer, XLCore, initial_memory

__all__ = ["initial_memory", "make_core"]


def make_core(cfg: PolicyConfig) -> nn.Module:
    return XLCore(cfg, TrXLLayer)
