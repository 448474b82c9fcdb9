"""LSTM baseline (twin of jax_tx/lstm.py): encoder -> stacked LSTM -> heads.

[i; f; g; o] = W_ih h^{l-1}_t + b_ih + W_hh h^l_{t-1} + b_hh  (nn.LSTM layout, forget bias 1)
y_t = h^{L-1}_t if W == D else W_out h^{L-1}_t + b_out;   memory = {"h", "c": [B, L, W]}
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.nn.common import torch_dtype
from torch_ref.nn.lstm import LSTM


class LSTMCore(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.lstm_width
        self.layers = nn.ModuleList([LSTM(cfg, cfg.d_model if i == 0 else width, width) for i in range(cfg.num_layers)])
        if width != cfg.d_model:
            self.out_proj = nn.Linear(width, cfg.d_model)
            nn.init.xavier_uniform_(self.out_proj.weight)
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, x, reset, memory, aux):
        """x [B, T, D], reset [B, T] -> (y [B, T, D], next memory)."""
        hs, cs = [], []
        h = x
        for i, layer in enumerate(self.layers):
            h, state = layer(h, reset, {"h": memory["h"][:, i], "c": memory["c"][:, i]})
            hs.append(state["h"])
            cs.append(state["c"])
        if self.cfg.lstm_width != self.cfg.d_model:
            h = self.out_proj(h)
        return h, {"h": torch.stack(hs, dim=1), "c": torch.stack(cs, dim=1)}


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    shape = (batch, cfg.num_layers, cfg.lstm_width)
    return {"h": torch.zeros(shape, dtype=torch_dtype(cfg)), "c": torch.zeros(shape, dtype=torch_dtype(cfg))}


def make_core(cfg: PolicyConfig) -> nn.Module:
    return LSTMCore(cfg)
