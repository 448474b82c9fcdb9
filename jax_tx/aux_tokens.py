"""Auxiliary history tokens (Metta's form): projections of the previous reward, the reset
flag and the previous action, added to the encoder latent before the backbone.

    x_t += W_r r_{t-1} + b_r + W_d reset_t + b_d + W_a onehot(a_{t-1}) + b_a

prev_action -1 (or absent) means "no previous action" and contributes only b_a.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import dense


class AuxEmbedding(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, reset, prev_action, prev_reward, dtype):
        """reset, prev_action, prev_reward [B, T] -> [B, T, D]."""
        cfg = self.cfg
        b, t = reset.shape
        if prev_reward is None:
            prev_reward = jnp.zeros((b, t), dtype)
        if prev_action is None:
            prev_action = jnp.full((b, t), -1, jnp.int32)
        onehot = jax.nn.one_hot(prev_action, cfg.num_actions, dtype=dtype)  # -1 -> all zeros
        return (
            dense(cfg, cfg.d_model, "reward_proj")(prev_reward.astype(dtype)[..., None])
            + dense(cfg, cfg.d_model, "reset_proj")(reset.astype(dtype)[..., None])
            + dense(cfg, cfg.d_model, "action_proj")(onehot)
        )
