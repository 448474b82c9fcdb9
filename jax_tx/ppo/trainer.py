"""One PPO iteration as one jitted function: rollout -> advantages -> update -> metrics.

    trainer = Trainer(tcfg)                 # builds env, policy, optimizer from the TrainConfig
    state = trainer.init(seed)              # TrainState: params, opt_state, rollout carry, key, iteration
    state, metrics = trainer.run(state)     # tcfg.iterations_per_call iterations under one lax.scan
    states = trainer.init_seeds([0, 1, 2])  # several seeds stacked on a leading axis (one device) ...
    states, metrics = trainer.run_seeds(states)  # ... trained together: vmap of the same iterations

`trainer.run` is jitted once; the Python loop (jax_tx/ppo/run.py) only logs and checkpoints.
Everything an iteration depends on lives in TrainState, so saving it and restoring it resumes
a run bit-identically.

On D devices (tcfg.devices, see jax_tx/ppo/sharding.py) the same functions run under jit with the
TrainState's NamedShardings as in/out shardings: envs, carry and memory split on the env axis,
params and optimizer state replicated (or fsdp-split), minibatches split over the mesh.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jax_tx.config import TrainConfig
from jax_tx.envs import make_env
from jax_tx.models.policy import example_inputs, make_policy
from jax_tx.ppo import guards, heads, schedules, sharding
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
        if env is None:
            env = make_env(tcfg.env, **tcfg.env_kwargs)
        heads.check_policy_env(tcfg.policy, env)
        tokens_env = getattr(env, "obs_dtype", None) == jnp.uint8
        if tokens_env != (tcfg.policy.encoder == "tokens"):
            kind = "token observations uint8[obs_dim, 3]" if tokens_env else "flat float observations"
            raise ValueError(
                f"env {tcfg.env!r} gives {kind} but the policy has encoder={tcfg.policy.encoder!r}; "
                f"use encoder={'tokens' if tokens_env else 'mlp'!r} (--encoder {'tokens' if tokens_env else 'mlp'})"
            )
        self.tcfg, self.env, self.cfg, self.ppo = tcfg, env, tcfg.policy, tcfg.ppo
        self.model = heads.wrap_for_env(make_policy(tcfg.policy), tcfg.policy, env)
        self.optimizer = make_optimizer(tcfg.ppo)
        self.num_segments_per_env = tcfg.rollout_steps // tcfg.ppo.bptt_horizon
        self.placement = sharding.Placement.for_config(tcfg)
        self.state_sharding = sharding.state_shardings(self.placement, jax.eval_shape(self._init, tcfg.seed))
        outs = (self.state_sharding, self.placement.replicated)
        self.run = jax.jit(self._run, in_shardings=(self.state_sharding,), out_shardings=outs)
        self.run_one = jax.jit(self._run_one, in_shardings=(self.state_sharding,), out_shardings=outs)
        self.run_seeds = jax.jit(jax.vmap(self._run))

    def init(self, seed: int | None = None) -> TrainState:
        """A fresh TrainState (computed eagerly, the same in every process), placed on the mesh."""
        return sharding.place(self._init(self.tcfg.seed if seed is None else seed), self.state_sharding)

    def init_seeds(self, seeds) -> TrainState:
        """TrainStates of init(seed) for every seed, stacked on a new leading axis, for run_seeds (one device)."""
        if self.placement.num_devices != 1:
            raise ValueError("init_seeds / run_seeds train several seeds on one device; set devices=1")
        return jax.vmap(self._init)(jnp.asarray(list(seeds)))

    def _init(self, seed: int) -> TrainState:
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
            self.model,
            self.cfg,
            self.ppo,
            self.optimizer,
            sched,
            state.params,
            state.opt_state,
            seg,
            k_upd,
            constrain=self.placement.shard_minibatch,
        )
        trs = ro.transitions
        guarded = {"observation": trs.obs, "reward": trs.reward, "loss": terms.total, "grad_norm": gnorm}
        nonfinite = guards.nonfinite_code({**guarded, "params": params})  # 1 + index in guards.GUARDED
        if self.tcfg.on_nonfinite == "skip":  # drop the update; the loop counts the skips
            params, opt_state = guards.keep_if(nonfinite == 0, (params, opt_state), (state.params, state.opt_state))
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
            "nonfinite": nonfinite,
            **{f"entropy_head_{k}": h for k, h in enumerate(terms.head_entropy)},
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
