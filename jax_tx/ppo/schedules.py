"""Hyperparameter schedules as pure functions of training progress p = iteration / num_iterations.

    lr(i)    = learning_rate * (i + 1) / W                              for i < W (warmup iterations)
             = lr_final + (learning_rate - lr_final) * (1 + cos(pi q)) / 2  (cosine, q = (i - W) / (N - W))
             = learning_rate + (lr_final - learning_rate) * q             (linear)
    ent(p)   = ent_coef + (ent_coef_final - ent_coef) * p                 (linear)
    clip(p)  = exp((1 - p) log clip_coef + p log clip_coef_final)        (log-linear)
    vclip(p) = vf_clip_coef + (vf_clip_coef_final - vf_clip_coef) * p    (linear)

All take a traced iteration index, so they live inside the jitted update and are logged every
iteration (a schedule that silently goes missing shows up as a flat line in the metrics).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from jax_tx.config import PPOConfig


@struct.dataclass
class ScheduleValues:
    learning_rate: jnp.ndarray
    ent_coef: jnp.ndarray
    clip_coef: jnp.ndarray
    vf_clip_coef: jnp.ndarray


def learning_rate(ppo: PPOConfig, iteration, num_iterations: int):
    """Warmup (linear from lr/W) then cosine / linear / constant to lr_final at the last iteration."""
    i = jnp.asarray(iteration, jnp.float32)
    w = ppo.lr_warmup_iterations
    warm = ppo.learning_rate * (i + 1.0) / max(w, 1)
    q = jnp.clip((i - w) / max(num_iterations - 1 - w, 1), 0.0, 1.0)
    if ppo.lr_schedule == "cosine":
        decayed = ppo.lr_final + (ppo.learning_rate - ppo.lr_final) * 0.5 * (1.0 + jnp.cos(jnp.pi * q))
    elif ppo.lr_schedule == "linear":
        decayed = ppo.learning_rate + (ppo.lr_final - ppo.learning_rate) * q
    else:
        decayed = jnp.asarray(ppo.learning_rate, jnp.float32)
    return jnp.where(i < w, warm, decayed)


def progress(iteration, num_iterations: int):
    """p in [0, 1]: 0 at the first iteration, 1 at the last."""
    return jnp.clip(jnp.asarray(iteration, jnp.float32) / max(num_iterations - 1, 1), 0.0, 1.0)


def linear(start: float, end: float, p):
    return start + (end - start) * p


def log_linear(start: float, end: float, p):
    return jnp.exp((1.0 - p) * jnp.log(start) + p * jnp.log(end))


def schedule_values(ppo: PPOConfig, iteration, num_iterations: int) -> ScheduleValues:
    p = progress(iteration, num_iterations)
    return ScheduleValues(
        learning_rate=learning_rate(ppo, iteration, num_iterations),
        ent_coef=linear(ppo.ent_coef, ppo.ent_coef_final, p),
        clip_coef=log_linear(ppo.clip_coef, ppo.clip_coef_final, p),
        vf_clip_coef=linear(ppo.vf_clip_coef, ppo.vf_clip_coef_final, p),
    )
