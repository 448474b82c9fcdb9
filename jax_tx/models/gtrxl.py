"""GTrXL (Parisotto et al. 2019): Transformer-XL with identity-map reordering and gates.

    y = g1(x, ReLU(Dropout(RelAttn(LN1([mem | x])))))
    h = g2(y, ReLU(FF(LN2(y))))
g is the GRU gate of nn/gating.py (b_g = 2.0 starts each layer near the identity);
gating="none" gives x + y. Memory and masks as in trxl.py (layer inputs, relative
positions, episode masks: what Metta's absolute-position GTrXL lacked).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.models.trxl import XLCore, initial_memory
from jax_tx.nn.common import layer_norm
from jax_tx.nn.feedforward import FeedForward
from jax_tx.nn.gating import combine
from jax_tx.nn.relative import RelMultiHeadAttention

__all__ = ["GTrXLLayer", "initial_memory", "make_core"]


class GTrXLLayer(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, mem, allowed, deterministic: bool):
        """x [B, T, D], mem [B, M, D], allowed [B, T, M+T] -> [B, T, D]."""
        cfg = self.cfg
        keys_in = jnp.concatenate([mem.astype(x.dtype), x], axis=1)
        a = RelMultiHeadAttention(cfg, name="attn")(layer_norm(cfg, "norm1")(keys_in), allowed, deterministic)
        a = nn.Dropout(cfg.dropout)(a, deterministic=deterministic)
        f_in = combine(cfg, "gate1", x, _act(cfg, a))
        f = FeedForward(cfg, name="ff")(layer_norm(cfg, "norm2")(f_in), deterministic)
        return combine(cfg, "gate2", f_in, _act(cfg, f))


def _act(cfg: PolicyConfig, y):
    return nn.relu(y) if cfg.sublayer_relu else y


def make_core(cfg: PolicyConfig, name: str) -> nn.Module:
    return XLCore(cfg, GTrXLLayer, name=name)
