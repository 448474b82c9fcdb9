"""Position-wise feed-forward: FF(x) = Dropout(W2 Dropout(act(W1 x + b1)) + b2), act = relu | gelu (erf) | silu."""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig


class FeedForward(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.act = activation(cfg.ff_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def activation(name: str):
    """relu | gelu (exact erf) | silu."""
    return {"relu": torch.relu, "gelu": nn.functional.gelu, "silu": nn.functional.silu}[name]
