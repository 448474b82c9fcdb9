"""Memoryless baseline core (twin of jax_tx/mlp.py).

y = ReLU(W_L ... ReLU(W_1 x + b_1) ... + b_L);  memory = {"none": [B, 0]} passed through
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.nn.common import torch_dtype


class MLPCore(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(cfg.d_model, cfg.d_model) for _ in range(cfg.num_layers)])

    def forward(self, x, reset, memory, aux):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x, memory


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    return {"none": torch.zeros(batch, 0, dtype=torch_dtype(cfg))}


def make_core(cfg: PolicyConfig) -> nn.Module:
    return MLPCore(cfg)
