"""The flat-vector encoder x = ReLU(W_enc obs + b) (twin of jax_tx/models/encoders/mlp.py).

A Linear subclass, so its weights stay at `encoder.weight` / `encoder.bias` in the policy's state dict.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from jax_tx.config import PolicyConfig


class MLPEncoder(nn.Linear):
    def __init__(self, cfg: PolicyConfig):
        super().__init__(cfg.obs_dim, cfg.d_model)
        nn.init.orthogonal_(self.weight, math.sqrt(2))
        nn.init.zeros_(self.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(obs))
