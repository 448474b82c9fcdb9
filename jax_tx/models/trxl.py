"""Transformer-XL (Dai et al. 2019) as an RL memory core, and the stack shared by its family.

Layer (pre-norm, `pre_norm=True`):
    y = x + Dropout(RelAttn(LN1([mem | x])))
    h = y + FF(LN2(y))
Layer (post-norm, the original default and NVIDIA's):
    y = LN1(x + Dropout(RelAttn([mem | x])))
    h = LN2(y + FF(y))

Memory (original Transformer-XL): per layer, the last M *inputs* of that layer,
detached, with a validity flag per slot so that slots from an earlier episode (or
never filled) are masked rather than attended as zeros.
    memory = {"hidden": [B, L, M, D], "valid": [B, M] bool}
Compatibility options (Metta's pre-Cortex TrXL / NVIDIA, not advice): memory_holds="outputs" keeps each
layer's outputs instead (then sequence mode != step mode); memory_init="zeros" starts from zero rows marked
valid, attended until the first reset (Metta, Cortex, DI-engine).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.attention import memory_attention_mask, roll_memory
from jax_tx.nn.common import layer_norm, state_dtype
from jax_tx.nn.feedforward import FeedForward
from jax_tx.nn.relative import RelMultiHeadAttention


class TrXLLayer(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, mem, allowed, deterministic: bool):
        """x [B, T, D], mem [B, M, D], allowed [B, T, M+T] -> [B, T, D]."""
        cfg = self.cfg
        keys_in = jnp.concatenate([mem.astype(x.dtype), x], axis=1)
        attn = RelMultiHeadAttention(cfg, name="attn")
        ff = FeedForward(cfg, name="ff")
        norm1, norm2 = layer_norm(cfg, "norm1"), layer_norm(cfg, "norm2")
        drop = nn.Dropout(cfg.dropout)
        if cfg.pre_norm:
            y = x + drop(attn(norm1(keys_in), allowed, deterministic), deterministic=deterministic)
            return y + ff(norm2(y), deterministic)
        y = norm1(x + drop(attn(keys_in, allowed, deterministic), deterministic=deterministic))
        return norm2(y + ff(y, deterministic))


class XLCore(nn.Module):
    """A stack of `layer_cls` layers over [memory | x] with episode-masked relative attention."""

    cfg: PolicyConfig
    layer_cls: type = TrXLLayer

    @nn.compact
    def __call__(self, x, reset, memory, aux, deterministic: bool):
        """x [B, T, D], reset [B, T] -> (y [B, T, D], next memory)."""
        cfg = self.cfg
        hidden, valid = memory["hidden"], memory["valid"]
        window = cfg.memory_len if cfg.same_length else None
        allowed = memory_attention_mask(valid, reset, window)
        next_valid = roll_memory(valid, reset)
        layer_inputs, layer_outputs = [], []
        h = x
        for i in range(cfg.num_layers):
            layer_inputs.append(h)
            h = self.layer_cls(cfg, name=f"layers_{i}")(h, hidden[:, i], allowed, deterministic)
            layer_outputs.append(h)
        kept = layer_outputs if cfg.memory_holds == "outputs" else layer_inputs
        return h, {"hidden": next_hidden(hidden, kept, next_valid), "valid": next_valid}


def next_hidden(hidden, layer_inputs, next_valid):
    """Last M rows of [mem_l | input_l] per layer, zeroed where invalid, no gradient."""
    m = hidden.shape[2]
    rows = [jnp.concatenate([hidden[:, i], h.astype(hidden.dtype)], axis=1)[:, -m:] for i, h in enumerate(layer_inputs)]
    stacked = jnp.stack(rows, axis=1)
    return jax.lax.stop_gradient(jnp.where(next_valid[:, None, :, None], stacked, 0.0).astype(hidden.dtype))


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    return {
        "hidden": jnp.zeros((batch, cfg.num_layers, cfg.memory_len, cfg.d_model), state_dtype(cfg)),
        "valid": jnp.full((batch, cfg.memory_len), cfg.memory_init == "zeros"),
    }


def make_core(cfg: PolicyConfig, name: str) -> nn.Module:
    return XLCore(cfg, TrXLLayer, name=name)
