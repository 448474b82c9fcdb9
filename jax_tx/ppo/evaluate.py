"""Greedy (or sampled) evaluation episodes of a policy, jitted: used by `jax-tx eval` and at the end of training.

out = run_episodes(model, params, cfg, env, episodes=100, key=key)
out["success"][out["finished"]].mean()
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.ppo import heads
from jax_tx.ppo.rollout import initial_carry, policy_step


def run_episodes(model, params, cfg, env, episodes: int, key, greedy: bool = True) -> dict[str, np.ndarray]:
    """First-episode return, success and length of `episodes` envs (arrays [episodes])."""
    k_env, k_run = jax.random.split(key)
    carry = initial_carry(env, cfg, k_env, episodes)

    def step(c, k):
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

    zeros = jnp.zeros((episodes,), jnp.float32)
    init = (carry, jnp.zeros((episodes,), bool), zeros, zeros, jnp.zeros((episodes,), jnp.int32))
    (_, finished, ret, succ, length), _ = jax.jit(lambda c, ks: jax.lax.scan(step, c, ks))(
        init, jax.random.split(k_run, env.max_steps)
    )
    return {
        "finished": np.asarray(finished),
        "return": np.asarray(ret),
        "success": np.asarray(succ),
        "length": np.asarray(length),
    }
