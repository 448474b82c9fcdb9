"""GRU baseline (twin of jax_tx/models/gru.py): encoder -> stacked GRU -> heads.

r, z = sigmoid(W_i{r,z} h^{l-1}_t + b_i{r,z} + W_h{r,z} h^l_{t-1} + b_h{r,z})   (nn.GRU layout, biases 0)
n = tanh(W_in h^{l-1}_t + b_in + r (W_hn h^l_{t-1} + b_hn)),   h^l_t = (1 - z) n + z h^l_{t-1}
y_t = h^{L-1}_t if W == D else W_out h^{L-1}_t + b_out;   memory = {"h": [B, L, W]}, W = cfg.lstm_width
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.nn.common import torch_dtype
from torch_ref.nn.gru import GRU


class GRUCore(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.lstm_width
        self.layers = nn.ModuleList([GRU(cfg, cfg.d_model if i == 0 else width, width) for i in range(cfg.num_layers)])
        if width != cfg.d_model:
            self.out_proj = nn.Linear(width, cfg.d_model)
            nn.init.xavier_uniform_(self.out_proj.weight)
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, x, reset, memory, aux):
        """x [B, T, D], reset [B, T] -> (y [B, T, D], next memory)."""
        hs = []
        h = x
        for i, layer in enumerate(self.layers):
            h, state = layer(h, reset, {"h": memory["h"][:, i]})
            hs.append(state["h"])
        if self.cfg.lstm_width != self.cfg.d_model:
            h = self.out_proj(h)
        return h, {"h": torch.stack(hs, dim=1)}


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    return {"h": torch.zeros(batch, cfg.num_layers, cfg.lstm_width, dtype=torch_dtype(cfg))}


def make_core(cfg: PolicyConfig) -> nn.Module:
    return GRUCore(cfg)
