"""Dtype policy and LayerNorm factory of the torch twin (see jax_tx/nn/common.py).

The twin computes in float32, or float64 for float64 configs; a bfloat16 config runs
its torch twin in float32 (the twin is the numeric reference, not a fast path).
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig


def torch_dtype(cfg: PolicyConfig) -> torch.dtype:
    return torch.float64 if cfg.dtype == "float64" else torch.float32


def layer_norm(cfg: PolicyConfig, width: int | None = None) -> nn.LayerNorm:
    """LayerNorm of the core: eps cfg.layer_norm_eps, a bias unless norm_bias=False (Cortex)."""
    return nn.LayerNorm(width or cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.norm_bias)
