"""Greedy (or sampled) evaluation episodes of a policy, jitted: used by `jax-tx eval` and at the end of training.

out = run_episodes(model, params, cfg, env, episodes=100, key=key)
out["success"][out["finished"]].mean()
play = episodes_fn(model, cfg, env, episodes=100)          # pure: jax.vmap(play)(stacked_params, keys)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.ppo import heads
from jax_tx.ppo.rollout import initial_carry, policy_step


def episodes_fn(model, cfg, env, episodes: int, greedy: bool = True):
    """A pure function (params, key) -> {"finished", "return", "success", "length"} (jnp arrays [episodes]) that
    plays `episodes` envs for env.max_steps steps and keeps each env's first episode; jit / vmap it freely."""

    def step(params, c, k):
        carry, finished, ret, succ, length = c
        k_act, k_env = jax.random.split(k)
        logits, _, memory = policy_step(
            model, params, cfg, carry.obs, carry.reset, carry.memory, carry.prev_action, carry.prev_reward
        )
        mask = heads.env_masks(env, carry.env_state, episodes)
        action, _ = heads.select_actions(k_act, logits, mask, greedy=greedy)
        obs, env_state, reward, term, trunc, info = jax.vmap(env.step)(
            jax.random.split(k_env, episodes), carry.env_state, action
        )
        done = term | trunc
        first = done & ~finished
        ret = jnp.where(first, info["episode_return"], ret)
        succ = jnp.where(first, info["success"], succ)
        length = jnp.where(first, info["episode_length"], length)
        carry = carry.replace(
            env_state=env_state,
            obs=obs,
            reset=done,
            memory=memory,
            prev_action=jnp.where(done, -1, heads.first_action(action)),
            prev_reward=jnp.where(done, 0.0, reward),
        )
        return (carry, finished | done, ret, succ, length), None

    def play(params, key):
        k_env, k_run = jax.random.split(key)
        carry = initial_carry(env, cfg, k_env, episodes)
        zeros = jnp.zeros((episodes,), jnp.float32)
        init = (carry, jnp.zeros((episodes,), bool), zeros, zeros, jnp.zeros((episodes,), jnp.int32))
        keys = jax.random.split(k_run, env.max_steps)
        (_, finished, ret, succ, length), _ = jax.lax.scan(lambda c, k: step(params, c, k), init, keys)
        return {"finished": finished, "return": ret, "success": succ, "length": length}

    return play


def run_episodes(model, params, cfg, env, episodes: int, key, greedy: bool = True) -> dict[str, np.ndarray]:
    """First-episode return, success and length of `episodes` envs (arrays [episodes])."""
    out = jax.jit(episodes_fn(model, cfg, env, episodes, greedy))(params, key)
    return {k: np.asarray(v) for k, v in out.items()}
