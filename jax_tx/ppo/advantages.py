"""Generalised advantage estimation with separate termination and truncation, and V-trace clipping.

Time-major [T, B]. For step t with reward r_t, value V_t = V(s_t) and flags term_t, trunc_t
(done_t = term_t or trunc_t; the env auto-resets, so s_{t+1} is the next episode's start when done):

    next_value_t = 0                              if term_t
                 = V(final_observation_t)         if trunc_t   (bootstrap on a time-limit cut)
                 = V_{t+1}   (V_T = last_value)   otherwise
    delta_t = rho_t (r_t + gamma next_value_t - V_t)
    A_t     = delta_t + gamma lambda c_t (1 - done_t) A_{t+1},      A_T = tail
    R_t     = A_t + V_t

with rho_t = min(ratio_t, rho_clip), c_t = min(ratio_t, c_clip) for V-trace (Metta's trainer),
and rho = c = 1 for plain GAE.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def bootstrap_values(values, last_value, truncated_values, terminated, truncated):
    """next_value [T, B] from values [T, B], last_value [B] and the value of final observations [T, B]."""
    chex.assert_rank(values, 2)
    chex.assert_equal_shape([values, truncated_values, terminated, truncated])
    chex.assert_shape(last_value, values.shape[1:])
    following = jnp.concatenate([values[1:], last_value[None]], axis=0)
    following = jnp.where(truncated, truncated_values, following)
    return jnp.where(terminated, 0.0, following)


def gae(
    rewards, values, next_values, done, gamma: float, lam: float, ratio=None, rho_clip=None, c_clip=None, tail=None
):
    """Advantages [T, B] by a reverse scan (see the module docstring); ratio=None gives plain GAE."""
    chex.assert_rank(rewards, 2)
    chex.assert_equal_shape([rewards, values, next_values, done])
    if ratio is None:
        rho = c = jnp.ones_like(rewards)
    else:
        chex.assert_equal_shape([ratio, rewards])
        rho = jnp.minimum(ratio, rho_clip)
        c = jnp.minimum(ratio, c_clip)
    tail = jnp.zeros_like(rewards[0]) if tail is None else tail
    chex.assert_shape(tail, rewards.shape[1:])
    deltas = rho * (rewards + gamma * next_values - values)
    discounts = gamma * lam * c * (1.0 - done.astype(rewards.dtype))

    def step(acc, xs):
        delta, discount = xs
        acc = delta + discount * acc
        return acc, acc

    _, adv = jax.lax.scan(step, tail, (deltas, discounts), reverse=True)
    return adv


def gae_python(rewards, values, next_values, done, gamma: float, lam: float):
    """The same equation as a Python loop over time (reference for tests)."""
    t_len = len(rewards)
    adv = [None] * t_len
    acc = 0.0 * rewards[0]
    for t in reversed(range(t_len)):
        delta = rewards[t] + gamma * next_values[t] - values[t]
        acc = delta + gamma * lam * (1.0 - done[t]) * acc
        adv[t] = acc
    return adv
