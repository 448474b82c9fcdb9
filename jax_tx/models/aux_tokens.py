"""Auxiliary history tokens (Metta's form): projections of the previous reward, the reset
flag and the previous action, added to the encoder latent before the backbone.

    x_t += W_r r_{t-1} + b_r + W_d reset_t + b_d + W_a onehot(a_{t-1}) + b_a

Inputs (the optional `prev_action` / `prev_reward` arguments of the policy):
    prev_action  int[B, T]   a_{t-1}, the action taken before step t; -1 = none
    prev_reward  float[B, T] r_{t-1}, the reward received with obs_t
None means "no previous action" (-1) and zero reward everywhere. onehot(-1) is the zero
vector, so a missing action contributes only b_a. At a step with reset=True both are ignored
(taken as -1 and 0): they belong to the previous episode. Init (both twins): xavier-uniform
weights, zero biases (Metta's). The sliding-window core reuses `history_inputs` and
`action_one_hot` for its reward and action tokens.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import dense

NO_ACTION = -1


def check_action_range(prev_action, num_actions: int) -> None:
    """Raise if concrete prev_action values lie outside [-1, num_actions) (skipped under jit)."""
    if isinstance(prev_action, jax.core.Tracer):
        return
    values = np.asarray(prev_action)
    if values.size and (values.min() < NO_ACTION or values.max() >= num_actions):
        raise ValueError(
            f"prev_action holds values in [{values.min()}, {values.max()}]; expected action indices in "
            f"[0, num_actions={num_actions}) or -1 for 'no previous action'"
        )


def history_inputs(reset, prev_action, prev_reward, dtype):
    """(reset, prev_action, prev_reward) as ([B,T] dtype, [B,T] int32, [B,T] dtype).

    None -> -1 / 0; where reset[b, t] the previous action and reward belong to the previous
    episode and are replaced by -1 / 0, so nothing before an episode start reaches it.
    """
    b, t = reset.shape
    if prev_action is None:
        prev_action = jnp.full((b, t), NO_ACTION, jnp.int32)
    if prev_reward is None:
        prev_reward = jnp.zeros((b, t), dtype)
    if not jnp.issubdtype(jnp.asarray(prev_action).dtype, jnp.integer):
        raise TypeError(f"prev_action has dtype {jnp.asarray(prev_action).dtype}; pass integer action indices")
    prev_action = jnp.where(reset, NO_ACTION, jnp.asarray(prev_action).astype(jnp.int32))
    prev_reward = jnp.where(reset, 0.0, jnp.asarray(prev_reward).astype(dtype)).astype(dtype)
    return reset.astype(dtype), prev_action, prev_reward


def action_one_hot(prev_action, num_actions: int, dtype):
    """[B, T] int -> [B, T, A]; -1 (no previous action) -> the zero vector."""
    return jax.nn.one_hot(prev_action, num_actions, dtype=dtype)


def history_dense(cfg: PolicyConfig, name: str) -> nn.Dense:
    """A D-wide projection with Metta's aux init: xavier-uniform kernel, zero bias."""
    return dense(cfg, cfg.d_model, name, kernel_init=nn.initializers.xavier_uniform())


class AuxEmbedding(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, reset, prev_action, prev_reward, dtype):
        """reset, prev_action, prev_reward [B, T] -> [B, T, D]."""
        cfg = self.cfg
        if prev_action is not None:
            check_action_range(prev_action, cfg.num_actions)
        reset, prev_action, prev_reward = history_inputs(reset, prev_action, prev_reward, dtype)
        return (
            history_dense(cfg, "reward_proj")(prev_reward[..., None])
            + history_dense(cfg, "reset_proj")(reset[..., None])
            + history_dense(cfg, "action_proj")(action_one_hot(prev_action, cfg.num_actions, dtype))
        )
