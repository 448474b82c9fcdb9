"""Auxiliary history tokens (twin of jax_tx/aux_tokens.py).

x_t += W_r r_{t-1} + b_r + W_d reset_t + b_d + W_a onehot(a_{t-1}) + b_a
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig


class AuxEmbedding(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.reward_proj = nn.Linear(1, cfg.d_model)
        self.reset_proj = nn.Linear(1, cfg.d_model)
        self.action_proj = nn.Linear(cfg.num_actions, cfg.d_model)

    def forward(self, reset, prev_action, prev_reward, dtype):
        b, t = reset.shape
        if prev_reward is None:
            prev_reward = torch.zeros(b, t, dtype=dtype)
        if prev_action is None:
            prev_action = torch.full((b, t), -1, dtype=torch.int64)
        prev_action = prev_action.to(torch.int64)
        onehot = nn.functional.one_hot(prev_action.clamp(min=0), self.cfg.num_actions).to(dtype)
        onehot = onehot * (prev_action >= 0).to(dtype)[..., None]  # -1 -> all zeros
        return (
            self.reward_proj(prev_reward.to(dtype)[..., None])
            + self.reset_proj(reset.to(dtype)[..., None])
            + self.action_proj(onehot)
        )
