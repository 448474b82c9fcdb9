"""One PPO iteration as one jitted function: rollout -> advantages -> update -> metrics.

    trainer = Trainer(tcfg)                 # builds env, policy, optimizer from the TrainConfig
    state = trainer.init(seed)              # TrainState: params, opt_state, rollout carry, key, iteration
    state, metrics = trainer.run(state)     # tcfg.iterations_per_call iterations under one lax.scan

`trainer.run` is jitted once; the Python loop (jax_tx/ppo/run.py) only logs and checkpoints.
Everything an iteration depends on lives in TrainState, so saving it and restoring it resumes
a run bit-identically.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jax_tx.config import TrainConfig
from jax_tx.envs import make_env
from jax_tx.models.policy import example_inputs, make_policy
from jax_tx.ppo import schedules
from jax_tx.ppo.advantages import bootstrap_values, gae
from jax_tx.ppo.rollout import RolloutCarry, initial_carry, rollout
from jax_tx.ppo.update import make_optimizer, make_segments, update


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    carry: RolloutCarry
    key: jnp.ndarray
    iteration: jnp.ndarray


def explained_variance(values, returns):
    """1 - Var(R - V) / Var(R) (nan-free: 0 when Var(R) = 0)."""
    var_r = jnp.var(returns)
    return jnp.where(var_r > 0, 1.0 - jnp.var(returns - values) / jnp.where(var_r > 0, var_r, 1.0), 0.0)


def episode_stats(trs) -> dict:
    done = (trs.terminated | trs.truncated).astype(jnp.float32)
    n = done.sum()
    denom = jnp.maximum(n, 1.0)
    return {
        "episodes": n,
        "episode_return": jnp.where(n > 0, (trs.episode_return * done).sum() / denom, jnp.nan),
        "success": jnp.where(n > 0, (trs.success * done).sum() / denom, jnp.nan),
    }


class Trainer:
    """Builds the env, policy and optimizer of a TrainConfig and the jitted iteration."""

    def __init__(self, tcfg: TrainConfig, env=None):
        if tcfg.policy.variant == "slot":
            raise ValueError("variant 'slot' has several action heads; jax_tx.ppo supports single-head policies only")
        if env is None:
            env = make_env(tcfg.env, **tcfg.env_kwargs)
        if (env.obs_dim, env.num_actions) != (tcfg.policy.obs_dim, tcfg.policy.num_actions):
            raise ValueError(
                f"policy has obs_dim={tcfg.policy.obs_dim}, num_actions={tcfg.policy.num_actions} but env "
                f"{tcfg.env!r} has obs_dim={env.obs_dim}, num_actions={env.num_actions}; build the policy config "
                f"with config.preset(variant, env.obs_dim, env.num_actions)"
            )
        tokens_env = getattr(env, "obs_dtype", None) == jnp.uint8
        if tokens_env != (tcfg.policy.encoder == "tokens"):
            kind = "token observations uint8[obs_dim, 3]" if tokens_env else "flat float observations"
            raise ValueError(
                f"env {tcfg.env!r} gives {kind} but the policy has encoder={tcfg.policy.encoder!r}; "
                f"use encoder={'tokens' if tokens_env else 'mlp'!r} (--encoder {'tokens' if tokens_env else 'mlp'})"
            )
        self.tcfg, self.env, self.cfg, self.ppo = tcfg, env, tcfg.policy, tcfg.ppo
        self.model = make_policy(tcfg.policy)
        self.optimizer = make_optimizer(tcfg.ppo)
        self.num_segments_per_env = tcfg.rollout_steps // tcfg.ppo.bptt_horizon
        self.run = jax.jit(self._run)
        self.run_one = jax.jit(self._run_one)

    def init(self, seed: int | None = None) -> TrainState:
        seed = self.tcfg.seed if seed is None else seed
        k_param, k_env, k_run = jax.random.split(jax.random.PRNGKey(seed), 3)
        obs, reset, mem = example_inputs(self.cfg, 1, 1)
        params = self.model.init(k_param, obs, reset, mem)
        return TrainState(
            params=params,
            opt_state=self.optimizer.init(params),
            carry=initial_carry(self.env, self.cfg, k_env, self.tcfg.num_envs),
            key=k_run,
            iteration=jnp.zeros((), jnp.int32),
        )

    def collect(self, params, carry, key):
        """Rollout + advantages: (next carry, Rollout, advantages [T, B], next_values [T, B])."""
        h = self.ppo.bptt_horizon
        carry, ro = rollout(self.model, self.env, self.cfg, params, carry, key, self.num_segments_per_env, h)
        trs = ro.transitions
        next_values = bootstrap_values(trs.value, ro.last_value, trs.truncated_value, trs.terminated, trs.truncated)
        done = trs.terminated | trs.truncated
        adv = gae(trs.reward, trs.value, next_values, done, self.ppo.gamma, self.ppo.gae_lambda)
        return carry, ro, adv, next_values

    def iteration(self, state: TrainState) -> tuple[TrainState, dict]:
        key, k_roll, k_upd = jax.random.split(state.key, 3)
        sched = schedules.schedule_values(self.ppo, state.iteration, self.tcfg.num_iterations)
        carry, ro, adv, next_values = self.collect(state.params, state.carry, k_roll)
        seg = make_segments(ro.transitions, ro.segment_memory, adv, next_values, self.ppo.bptt_horizon)
        params, opt_state, terms, gnorm = update(
            self.model, self.cfg, self.ppo, self.optimizer, sched, state.params, state.opt_state, seg, k_upd
        )
        metrics = {
            "loss": terms.total,
            "policy_loss": terms.policy_loss,
            "value_loss": terms.value_loss,
            "entropy": terms.entropy,
            "approx_kl": terms.approx_kl,
            "clipfrac": terms.clipfrac,
            "grad_norm": gnorm,
            "explained_variance": explained_variance(ro.transitions.value, adv + ro.transitions.value),
            "lr": sched.learning_rate,
            "ent_coef": sched.ent_coef,
            "clip_coef": sched.clip_coef,
            "vf_clip_coef": sched.vf_clip_coef,
            **episode_stats(ro.transitions),
        }
        new = TrainState(params=params, opt_state=opt_state, carry=carry, key=key, iteration=state.iteration + 1)
        return new, jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), metrics)

    def _run(self, state: TrainState) -> tuple[TrainState, dict]:
        """iterations_per_call iterations; metrics stacked [iterations_per_call]."""
        return jax.lax.scan(lambda s, _: self.iteration(s), state, None, length=self.tcfg.iterations_per_call)

    def _run_one(self, state: TrainState) -> tuple[TrainState, dict]:
        """One iteration with metrics stacked [1] (for a remainder of iterations_per_call)."""
        state, metrics = self.iteration(state)
        return state, jax.tree_util.tree_map(lambda x: x[None], metrics)
