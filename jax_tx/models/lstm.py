"""LSTM baseline: encoder -> stacked LSTM -> heads (the recurrent reference the transformers beat).

Layer l (torch nn.LSTM layout, gate order i, f, g, o; forget-gate bias starts at 1):
    [i; f; g; o] = W_ih h^{l-1}_t + b_ih + W_hh h^l_{t-1} + b_hh
    c^l_t = sigmoid(f) c^l_{t-1} + sigmoid(i) tanh(g),   h^l_t = sigmoid(o) tanh(c^l_t)
(h, c) of every layer are zeroed before step t where reset[b, t]. Layer 0 reads the encoder
latent (width D), later layers the previous layer's h (width W = cfg.lstm_width).
    y_t = h^{L-1}_t                if W == D
    y_t = W_out h^{L-1}_t + b_out   otherwise (so the heads always see width D)
memory = {"h", "c": [B, L, W]}
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import dense, state_dtype
from jax_tx.nn.lstm import LSTM


class LSTMCore(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, reset, memory, aux, deterministic: bool):
        """x [B, T, D], reset [B, T] -> (y [B, T, D], next memory)."""
        cfg = self.cfg
        hs, cs = [], []
        h = x
        for i in range(cfg.num_layers):
            state = {"h": memory["h"][:, i], "c": memory["c"][:, i]}
            h, state = LSTM(cfg, cfg.lstm_width, name=f"layers_{i}")(h, reset, state)
            hs.append(state["h"])
            cs.append(state["c"])
        if cfg.lstm_width != cfg.d_model:
            h = dense(cfg, cfg.d_model, "out_proj", kernel_init=nn.initializers.xavier_uniform())(h)
        return h, {"h": jnp.stack(hs, axis=1), "c": jnp.stack(cs, axis=1)}


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    shape = (batch, cfg.num_layers, cfg.lstm_width)
    return {"h": jnp.zeros(shape, state_dtype(cfg)), "c": jnp.zeros(shape, state_dtype(cfg))}


def make_core(cfg: PolicyConfig, name: str) -> nn.Module:
    return LSTMCore(cfg, name=name)
