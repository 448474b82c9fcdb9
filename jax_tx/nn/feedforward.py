"""Position-wise feed-forward: FF(x) = Dropout(W2 Dropout(act(W1 x + b1)) + b2), act = cfg.ff_activation
(relu; gelu: the exact erf form; silu: x sigmoid(x), Cortex)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import dense


class FeedForward(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, deterministic: bool) -> jnp.ndarray:
        cfg = self.cfg
        h = activation(cfg.ff_activation)(dense(cfg, cfg.d_ff, "fc1")(x))
        h = nn.Dropout(cfg.dropout)(h, deterministic=deterministic)
        y = dense(cfg, cfg.d_model, "fc2")(h)
        return nn.Dropout(cfg.dropout)(y, deterministic=deterministic)


def activation(name: str):
    """relu | gelu (exact erf, as torch's default) | silu."""
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    return {"relu": nn.relu, "silu": nn.silu}[name]
