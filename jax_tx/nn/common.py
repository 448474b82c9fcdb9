"""Dtype policy and the two layer factories every module uses.

Parameters are float32 (float64 in float64 parity runs); computation runs in
`cfg.dtype`. LayerNorm epsilon is always passed explicitly (flax defaults to 1e-6,
torch to 1e-5).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jax_tx.config import PolicyConfig


def compute_dtype(cfg: PolicyConfig):
    """dtype for activations; None lets flax promote inputs and params (float32/float64)."""
    return jnp.bfloat16 if cfg.dtype == "bfloat16" else None


def param_dtype(cfg: PolicyConfig):
    return jnp.float64 if cfg.dtype == "float64" else jnp.float32


def state_dtype(cfg: PolicyConfig):
    """dtype of recurrent memory leaves (kept in full precision under bfloat16)."""
    return jnp.float64 if cfg.dtype == "float64" else jnp.float32


def dense(cfg: PolicyConfig, features: int, name: str, use_bias: bool = True, kernel_init=None) -> nn.Dense:
    kwargs = {} if kernel_init is None else {"kernel_init": kernel_init}
    return nn.Dense(
        features, use_bias=use_bias, dtype=compute_dtype(cfg), param_dtype=param_dtype(cfg), name=name, **kwargs
    )


def layer_norm(cfg: PolicyConfig, name: str) -> nn.LayerNorm:
    """LayerNorm of the core: eps cfg.layer_norm_eps, a bias unless norm_bias=False (Cortex)."""
    return nn.LayerNorm(
        epsilon=cfg.layer_norm_eps,
        dtype=compute_dtype(cfg),
        param_dtype=param_dtype(cfg),
        use_bias=cfg.norm_bias,
        name=name,
    )
