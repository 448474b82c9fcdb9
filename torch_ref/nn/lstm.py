"""Single-layer nn.LSTM stepped over time with resets (twin of jax_tx/nn/lstm.py).

(h, c) are zeroed before step t where reset[b, t]; the forget block of b_ih starts at cfg.lstm_forget_bias
(default 1), the rest of b_ih and b_hh at 0.
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.nn.common import torch_dtype


class LSTM(nn.LSTM):
    """nn.LSTM (its parameter names and layout) with a per-step forward that applies resets."""

    def __init__(self, cfg: PolicyConfig, input_dim: int, features: int):
        super().__init__(input_dim, features, batch_first=True)
        with torch.no_grad():
            self.bias_ih_l0.zero_()
            self.bias_hh_l0.zero_()
            self.bias_ih_l0[features : 2 * features] = cfg.lstm_forget_bias

    def forward(self, x, reset, state):
        """x [B, T, I], reset [B, T], state {"h", "c": [B, H]} -> (y [B, T, H], state)."""
        h, c = state["h"].to(x.dtype), state["c"].to(x.dtype)
        ys = []
        for t in range(x.shape[1]):
            keep = (~reset[:, t]).to(x.dtype)[:, None]
            h, c = h * keep, c * keep
            y, (h1, c1) = super().forward(x[:, t : t + 1], (h[None], c[None]))
            h, c = h1[0], c1[0]
            ys.append(y)
        return torch.cat(ys, dim=1), {"h": h.detach(), "c": c.detach()}


def lstm_initial_state(cfg: PolicyConfig, batch: int, features: int) -> dict:
    dt = torch_dtype(cfg)
    return {"h": torch.zeros(batch, features, dtype=dt), "c": torch.zeros(batch, features, dtype=dt)}
