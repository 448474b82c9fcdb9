"""Auxiliary history tokens (twin of jax_tx/aux_tokens.py).

x_t += W_r r_{t-1} + b_r + W_d reset_t + b_d + W_a onehot(a_{t-1}) + b_a
prev_action -1 (or None) = no previous action (onehot = 0); prev_reward None = 0;
both are taken as -1 / 0 at steps with reset=True.
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig

NO_ACTION = -1


def check_action_range(prev_action: torch.Tensor, num_actions: int) -> None:
    """Raise if prev_action values lie outside [-1, num_actions)."""
    if prev_action.numel() and (int(prev_action.min()) < NO_ACTION or int(prev_action.max()) >= num_actions):
        raise ValueError(
            f"prev_action holds values in [{int(prev_action.min())}, {int(prev_action.max())}]; expected action "
            f"indices in [0, num_actions={num_actions}) or -1 for 'no previous action'"
        )


def history_inputs(reset, prev_action, prev_reward, dtype):
    """(reset, prev_action, prev_reward) as ([B,T] dtype, [B,T] int64, [B,T] dtype).

    None -> -1 / 0; where reset[b, t] they are replaced by -1 / 0 (they belong to the previous episode).
    """
    b, t = reset.shape
    if prev_action is None:
        prev_action = torch.full((b, t), NO_ACTION, dtype=torch.int64)
    if prev_reward is None:
        prev_reward = torch.zeros(b, t, dtype=dtype)
    prev_action = torch.as_tensor(prev_action)
    if prev_action.is_floating_point() or prev_action.dtype == torch.bool:
        raise TypeError(f"prev_action has dtype {prev_action.dtype}; pass integer action indices")
    prev_action = torch.where(reset, NO_ACTION, prev_action.to(torch.int64))
    prev_reward = torch.where(reset, torch.zeros((), dtype=dtype), torch.as_tensor(prev_reward).to(dtype))
    return reset.to(dtype), prev_action, prev_reward


def action_one_hot(prev_action: torch.Tensor, num_actions: int, dtype) -> torch.Tensor:
    """[B, T] int -> [B, T, A]; -1 (no previous action) -> the zero vector."""
    onehot = nn.functional.one_hot(prev_action.clamp(min=0), num_actions).to(dtype)
    return onehot * (prev_action >= 0).to(dtype)[..., None]


def history_linear(in_features: int, d_model: int) -> nn.Linear:
    """A D-wide projection with Metta's aux init: xavier-uniform weight, zero bias."""
    layer = nn.Linear(in_features, d_model)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class AuxEmbedding(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.reward_proj = history_linear(1, cfg.d_model)
        self.reset_proj = history_linear(1, cfg.d_model)
        self.action_proj = history_linear(cfg.num_actions, cfg.d_model)

    def forward(self, reset, prev_action, prev_reward, dtype):
        """reset, prev_action, prev_reward [B, T] -> [B, T, D]."""
        if prev_action is not None:
            check_action_range(torch.as_tensor(prev_action), self.cfg.num_actions)
        reset, prev_action, prev_reward = history_inputs(reset, prev_action, prev_reward, dtype)
        return (
            self.reward_proj(prev_reward[..., None])
            + self.reset_proj(reset[..., None])
            + self.action_proj(action_one_hot(prev_action, self.cfg.num_actions, dtype))
        )
