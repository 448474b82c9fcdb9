"""NVIDIA's Transformer-XL (DeepLearningExamples): the trxl layer, post-norm, longer memory.

Differences from `trxl` are configuration, set by the `trxl_nvidia` preset:
post-norm (`pre_norm=False`), d_model 512, 16 layers, memory 192. Its `same_length`
window (every query sees memory_len + 1 keys: itself and memory_len earlier steps) and
its memory layout (one stacked tensor of layer *inputs*) are what every XL core here
uses, see trxl.py.
"""

from __future__ import annotations

import flax.linen as nn

from jax_tx.config import PolicyConfig
from jax_tx.models.trxl import TrXLLayer, XLCore, initial_memory

__all__ = ["initial_memory", "make_core"]


def make_core(cfg: PolicyConfig, name: str) -> nn.Module:
    return XLCore(cfg, TrXLLayer, name=name)
