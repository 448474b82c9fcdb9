"""Single-layer nn.GRU stepped over time with resets (twin of jax_tx/nn/gru.py).

Gate order r, z, n: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) n + z h.
h is zeroed before step t where reset[b, t]; weights keep nn.GRU's init; the z block of b_ih starts at
cfg.gru_update_bias (default 0), the rest of b_ih and b_hh at 0.
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig


class GRU(nn.GRU):
    """nn.GRU (its parameter names and layout) with a per-step forward that applies resets."""

    def __init__(self, cfg: PolicyConfig, input_dim: int, features: int):
        super().__init__(input_dim, features, batch_first=True)
        with torch.no_grad():
            self.bias_ih_l0.zero_()
            self.bias_hh_l0.zero_()
            self.bias_ih_l0[features : 2 * features] = cfg.gru_update_bias

    def forward(self, x, reset, state):
        """x [B, T, I], reset [B, T], state {"h": [B, H]} -> (y [B, T, H], state)."""
        h = state["h"].to(x.dtype)
        ys = []
        for t in range(x.shape[1]):
            h = h * (~reset[:, t]).to(x.dtype)[:, None]
            y, h1 = super().forward(x[:, t : t + 1], h[None])
            h = h1[0]
            ys.append(y)
        return torch.cat(ys, dim=1), {"h": h.detach()}
