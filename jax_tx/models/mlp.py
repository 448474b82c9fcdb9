"""Memoryless baseline core: a stack of Dense+ReLU layers that ignores reset and memory.

    y = ReLU(W_L ... ReLU(W_1 x + b_1) ... + b_L)        (num_layers layers of width D)

Memory is a placeholder with one batch-first leaf of width 0, {"none": [B, 0]}, so that
the rollout and update code treat every variant alike. A policy built on this core sees
only the current observation: on a T-Maze it cannot beat chance at the junction.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import dense, state_dtype


class MLPCore(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, reset, memory, aux, deterministic: bool):
        """x [B, T, D] -> (y [B, T, D], memory unchanged)."""
        for i in range(self.cfg.num_layers):
            x = nn.relu(dense(self.cfg, self.cfg.d_model, f"layers_{i}")(x))
        return x, memory


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    return {"none": jnp.zeros((batch, 0), state_dtype(cfg))}


def make_core(cfg: PolicyConfig, name: str) -> nn.Module:
    return MLPCore(cfg, name=name)
