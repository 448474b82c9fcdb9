"""GRU baseline: encoder -> stacked GRU -> heads (the recurrent baseline of purejaxrl / memorax).

Layer l (torch nn.GRU layout, gate order r, z, n; biases start at 0):
    r = sigmoid(W_ir h^{l-1}_t + b_ir + W_hr h^l_{t-1} + b_hr)
    z = sigmoid(W_iz h^{l-1}_t + b_iz + W_hz h^l_{t-1} + b_hz)
    n = tanh(W_in h^{l-1}_t + b_in + r * (W_hn h^l_{t-1} + b_hn))
    h^l_t = (1 - z) * n + z * h^l_{t-1}
h of every layer is zeroed before step t where reset[b, t]. Layer 0 reads the encoder latent
(width D), later layers the previous layer's h (width W = cfg.lstm_width, which sets the GRU width too).
    y_t = h^{L-1}_t                if W == D
    y_t = W_out h^{L-1}_t + b_out   otherwise (so the heads always see width D)
memory = {"h": [B, L, W]}
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import dense, state_dtype
from jax_tx.nn.gru import GRU


class GRUCore(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, reset, memory, aux, deterministic: bool):
        """x [B, T, D], reset [B, T] -> (y [B, T, D], next memory)."""
        cfg = self.cfg
        hs = []
        h = x
        for i in range(cfg.num_layers):
            h, state = GRU(cfg, cfg.lstm_width, name=f"layers_{i}")(h, reset, {"h": memory["h"][:, i]})
            hs.append(state["h"])
        if cfg.lstm_width != cfg.d_model:
            h = dense(cfg, cfg.d_model, "out_proj", kernel_init=nn.initializers.xavier_uniform())(h)
        return h, {"h": jnp.stack(hs, axis=1)}


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    return {"h": jnp.zeros((batch, cfg.num_layers, cfg.lstm_width), state_dtype(cfg))}


def make_core(cfg: PolicyConfig, name: str) -> nn.Module:
    return GRUCore(cfg, name=name)
