"""Rollout: `lax.scan` over time with the vmapped env stepped inside, the policy in step mode.

Carry per env b: the env state, the observation o_t, reset_t ("o_t starts an episode": the env
auto-reset, or the very first step), the policy memory, and the previous action / reward
(-1 / 0 at an episode start). One step:

    out, mem' = policy(o_t[:, None], reset_t[:, None], mem, prev_action, prev_reward)
    a_t ~ Categorical(out.logits);  o_{t+1}, r_t, term_t, trunc_t = env.step(a_t)
        (factored heads: one categorical per head, masked by env.action_mask(state_t); see heads.py)
    V(final_obs_t) = policy(final_obs_t, reset=False, mem').value   only if any trunc_t
    reset_{t+1} = term_t or trunc_t

The scan is nested: an outer scan over the rollout's T/H segments, an inner scan over the H
steps of a segment. The outer scan stores the memory at each segment's first step, which is all
the update needs to recompute each segment in sequence mode (sequence mode == step mode).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jax_tx.config import PolicyConfig
from jax_tx.models.policy import initial_memory
from jax_tx.ppo import heads


@struct.dataclass
class RolloutCarry:
    """What one rollout hands to the next: env and policy state per env, leaves [B, ...]."""

    env_state: Any
    obs: jnp.ndarray
    reset: jnp.ndarray
    memory: Any
    prev_action: jnp.ndarray
    prev_reward: jnp.ndarray


@struct.dataclass
class Transition:
    """One step of every env (leaves [B, ...]; stacked to [T, B, ...] by the scan)."""

    obs: jnp.ndarray
    reset: jnp.ndarray
    prev_action: jnp.ndarray
    prev_reward: jnp.ndarray
    action: jnp.ndarray
    logp: jnp.ndarray
    value: jnp.ndarray
    reward: jnp.ndarray
    terminated: jnp.ndarray
    truncated: jnp.ndarray
    truncated_value: jnp.ndarray
    success: jnp.ndarray
    episode_return: jnp.ndarray
    mask: jnp.ndarray = None
    """bool[B, sum A_k]: the action mask the step was sampled under (width 0: the env has none)."""


@struct.dataclass
class Rollout:
    transitions: Transition
    """Leaves [T, B, ...], time-major."""
    segment_memory: Any
    """Memory at each segment's first step, leaves [T/H * B, ...]; segment s = i * B + b."""
    last_value: jnp.ndarray
    """V(o_T) [B] from the carry after the last step (GAE's bootstrap)."""


def uses_prev(cfg: PolicyConfig) -> bool:
    """Whether the policy reads the previous action and reward."""
    return cfg.aux_tokens or cfg.variant == "sliding"


def policy_inputs(cfg: PolicyConfig, obs, reset, prev_action, prev_reward) -> dict:
    """Keyword arguments of model.apply for [B, T] inputs."""
    kw = {"obs": obs, "reset": reset}
    if uses_prev(cfg):
        kw.update(prev_action=prev_action, prev_reward=prev_reward)
    return kw


def policy_step(model, params, cfg: PolicyConfig, obs, reset, memory, prev_action, prev_reward):
    """One step in step mode for [B] inputs: (logits [B, A] or K heads [B, A_k], value [B], next memory)."""
    kw = policy_inputs(cfg, obs[:, None], reset[:, None], prev_action[:, None], prev_reward[:, None])
    out, memory = model.apply(params, memory=memory, deterministic=True, **kw)
    return jax.tree_util.tree_map(lambda x: x[:, 0], out.logits), out.value[:, 0], memory


def initial_carry(env, cfg: PolicyConfig, key, num_envs: int) -> RolloutCarry:
    obs, env_state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return RolloutCarry(
        env_state=env_state,
        obs=obs,
        reset=jnp.ones((num_envs,), bool),
        memory=initial_memory(cfg, num_envs),
        prev_action=jnp.full((num_envs,), -1, jnp.int32),
        prev_reward=jnp.zeros((num_envs,), jnp.float32),
    )


def env_step(env, carry: RolloutCarry, key, action):
    keys = jax.random.split(key, action.shape[0])
    return jax.vmap(env.step)(keys, carry.env_state, action)


def rollout(model, env, cfg: PolicyConfig, params, carry: RolloutCarry, key, num_segments: int, horizon: int):
    """Collect num_segments * horizon steps from every env: (next carry, Rollout)."""

    def step(c: RolloutCarry, step_key):
        k_act, k_env = jax.random.split(step_key)
        logits, value, memory = policy_step(model, params, cfg, c.obs, c.reset, c.memory, c.prev_action, c.prev_reward)
        mask = heads.env_masks(env, c.env_state, c.reset.shape[0])
        action, logp = heads.select_actions(k_act, logits, mask)
        obs, env_state, reward, terminated, truncated, info = env_step(env, c, k_env, action)
        first = heads.first_action(action)

        def final_value():
            prev = (first, reward)
            _, v, _ = policy_step(model, params, cfg, info["final_observation"], jnp.zeros_like(c.reset), memory, *prev)
            return v

        truncated_value = jax.lax.cond(jnp.any(truncated), final_value, lambda: jnp.zeros_like(value))
        done = terminated | truncated
        tr = Transition(
            obs=c.obs,
            reset=c.reset,
            prev_action=c.prev_action,
            prev_reward=c.prev_reward,
            action=action,
            logp=logp,
            value=value,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            truncated_value=truncated_value,
            success=info["success"],
            episode_return=info["episode_return"],
            mask=mask,
        )
        nxt = RolloutCarry(
            env_state=env_state,
            obs=obs,
            reset=done,
            memory=memory,
            prev_action=jnp.where(done, -1, first),
            prev_reward=jnp.where(done, 0.0, reward),
        )
        return nxt, tr

    def segment(c: RolloutCarry, seg_key):
        first_memory = c.memory
        c, trs = jax.lax.scan(step, c, jax.random.split(seg_key, horizon))
        return c, (first_memory, trs)

    carry, (seg_mem, trs) = jax.lax.scan(segment, carry, jax.random.split(key, num_segments))
    trs = jax.tree_util.tree_map(lambda x: x.reshape((num_segments * horizon,) + x.shape[2:]), trs)
    seg_mem = jax.tree_util.tree_map(lambda x: x.reshape((num_segments * x.shape[1],) + x.shape[2:]), seg_mem)
    _, last_value, _ = policy_step(
        model, params, cfg, carry.obs, carry.reset, carry.memory, carry.prev_action, carry.prev_reward
    )
    return carry, Rollout(transitions=trs, segment_memory=seg_mem, last_value=last_value)
