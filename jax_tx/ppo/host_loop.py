"""PPO against host envs (numpy, stepped outside jit): a jitted policy step per env step, one jitted update.

    trainer = HostTrainer(tcfg, groups)    # groups: host envs (HostVectorEnv, MettaGridVecEnv), rows sum to num_envs
    state = trainer.init()                 # HostState: params, opt_state, per-group carry, key, iteration
    state, metrics = trainer.iteration(state)

The batch is split into groups (Metta's async_factor=2 double buffering): step t of group g dispatches the jitted
policy step (JAX async dispatch returns at once), then the host steps the env of the *next* group with the actions
it already holds, so the env of one group runs while the device computes the policy of the other. Everything
else is `jax_tx.ppo`: the memory stored at each segment's first step, V(final_observation) on truncation, GAE
with terminated / truncated apart (advantages.py), segments and the epoch / minibatch update (update.py).
Log-probs, values and memory stay on the device during the rollout; only actions come back each step.
`trainer.timers` accumulates seconds spent in env.step (env), waiting for actions (policy), building and
moving the batch (transfer) and in the update (update).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jax_tx.config import TrainConfig
from jax_tx.models.policy import example_inputs, initial_memory, make_policy
from jax_tx.ppo import schedules
from jax_tx.ppo.advantages import bootstrap_values, gae
from jax_tx.ppo.rollout import Transition, policy_step
from jax_tx.ppo.trainer import episode_stats, explained_variance
from jax_tx.ppo.update import make_optimizer, make_segments, update

TIMERS = ("env", "policy", "transfer", "update")


@dataclasses.dataclass
class GroupCarry:
    """What one group's rollout hands to the next: obs [Bg, ...] (numpy), reset / prev (numpy), memory (device)."""

    obs: np.ndarray
    reset: np.ndarray
    memory: Any
    prev_action: np.ndarray
    prev_reward: np.ndarray


@struct.dataclass
class HostState:
    params: Any
    opt_state: Any
    key: jnp.ndarray
    iteration: jnp.ndarray
    carries: list = struct.field(pytree_node=False)


class HostTrainer:
    """Jitted act / final value / update around host envs (see the module docstring)."""

    def __init__(self, tcfg: TrainConfig, groups: list):
        cfg = tcfg.policy
        if cfg.variant == "slot":
            raise ValueError("variant 'slot' has several action heads; jax_tx.ppo supports single-head policies only")
        rows = sum(g.num_envs for g in groups)
        if rows != tcfg.num_envs:
            raise ValueError(f"the env groups hold {rows} rows but num_envs={tcfg.num_envs}; make them agree")
        for g in groups:
            if (g.obs_dim, g.num_actions) != (cfg.obs_dim, cfg.num_actions):
                raise ValueError(
                    f"policy has obs_dim={cfg.obs_dim}, num_actions={cfg.num_actions} but env {g.name!r} has "
                    f"obs_dim={g.obs_dim}, num_actions={g.num_actions}; build the policy config from the env"
                )
            tokens_env = getattr(g, "obs_dtype", None) == np.uint8
            if tokens_env != (cfg.encoder == "tokens"):
                kind = "token observations uint8[obs_dim, 3]" if tokens_env else "flat float observations"
                raise ValueError(
                    f"env {g.name!r} gives {kind} but the policy has encoder={cfg.encoder!r}; "
                    f"use encoder={'tokens' if tokens_env else 'mlp'!r}"
                )
        self.tcfg, self.groups, self.cfg, self.ppo = tcfg, list(groups), cfg, tcfg.ppo
        self.model = make_policy(cfg)
        self.optimizer = make_optimizer(tcfg.ppo)
        self.timers = dict.fromkeys(TIMERS, 0.0)
        self._act = jax.jit(self._act_fn)
        self._greedy = jax.jit(self._greedy_fn)
        self._value = jax.jit(self._value_fn)
        self._learn = jax.jit(self._learn_fn)

    def init(self, seed: int | None = None) -> HostState:
        seed = self.tcfg.seed if seed is None else seed
        k_param, k_run = jax.random.split(jax.random.PRNGKey(seed))
        obs, reset, mem = example_inputs(self.cfg, 1, 1)
        params = self.model.init(k_param, obs, reset, mem)
        carries = []
        for g in self.groups:  # each group resets with its own constructor seed
            n = g.num_envs
            obs0 = g.reset()
            carries.append(
                GroupCarry(obs0, np.ones(n, bool), initial_memory(self.cfg, n), np.full(n, -1, np.int32),
                           np.zeros(n, np.float32))
            )  # fmt: skip
        return HostState(params, self.optimizer.init(params), k_run, jnp.zeros((), jnp.int32), carries)

    # --- jitted pieces
    def _act_fn(self, params, obs, reset, memory, prev_action, prev_reward, key):
        """a ~ pi(. | o_t, memory): (action int32[Bg], logp [Bg], value [Bg], next memory)."""
        logits, value, memory = policy_step(self.model, params, self.cfg, obs, reset, memory, prev_action, prev_reward)
        action = jax.random.categorical(key, logits).astype(jnp.int32)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
        return action, logp, value, memory

    def _greedy_fn(self, params, obs, reset, memory, prev_action, prev_reward):
        """a = argmax pi(. | o_t, memory): (action int32[Bg], next memory)."""
        logits, _, memory = policy_step(self.model, params, self.cfg, obs, reset, memory, prev_action, prev_reward)
        return jnp.argmax(logits, axis=-1).astype(jnp.int32), memory

    def _value_fn(self, params, obs, reset, memory, prev_action, prev_reward):
        """V(o) [Bg] without committing memory (bootstrap of a truncation or of the rollout's end)."""
        _, value, _ = policy_step(self.model, params, self.cfg, obs, reset, memory, prev_action, prev_reward)
        return value

    def _learn_fn(self, params, opt_state, trs: Transition, seg_memory, last_value, key, iteration):
        """GAE + segments + update_epochs of minibatch steps; (params, opt_state, metrics)."""
        sched = schedules.schedule_values(self.ppo, iteration, self.tcfg.num_iterations)
        next_values = bootstrap_values(trs.value, last_value, trs.truncated_value, trs.terminated, trs.truncated)
        adv = gae(trs.reward, trs.value, next_values, trs.terminated | trs.truncated, self.ppo.gamma,
                  self.ppo.gae_lambda)  # fmt: skip
        seg = make_segments(trs, seg_memory, adv, next_values, self.ppo.bptt_horizon)
        params, opt_state, terms, gnorm = update(
            self.model, self.cfg, self.ppo, self.optimizer, sched, params, opt_state, seg, key
        )
        metrics = {
            "loss": terms.total,
            "policy_loss": terms.policy_loss,
            "value_loss": terms.value_loss,
            "entropy": terms.entropy,
            "approx_kl": terms.approx_kl,
            "clipfrac": terms.clipfrac,
            "grad_norm": gnorm,
            "explained_variance": explained_variance(trs.value, adv + trs.value),
            "lr": sched.learning_rate,
            "ent_coef": sched.ent_coef,
            "clip_coef": sched.clip_coef,
            "vf_clip_coef": sched.vf_clip_coef,
            **episode_stats(trs),
        }
        return params, opt_state, jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), metrics)

    # --- host loop
    def _tick(self, name: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timers[name] += t1 - t0
        return t1

    def collect(self, params, carries: list, key, steps: int) -> tuple[dict, list, Any]:
        """Roll `steps` steps of every group, interleaved (see the module docstring).

        Returns (rows, carries, key): rows[g] maps Transition field names to per-step lists ([Bg] numpy for host
        values, device arrays for logp / value / truncated_value) plus "segment_memory" (the memory at steps
        0, H, 2H, ...) and "last_value" (V(o_steps) on the device).
        """
        h = self.ppo.bptt_horizon
        n_groups = len(self.groups)
        rows: list[dict[str, list]] = [{} for _ in range(n_groups)]
        pending: list[Any] = [None] * n_groups
        key, *gkeys = jax.random.split(key, n_groups + 1)
        step_keys = [jax.random.split(k, steps) for k in gkeys]

        def dispatch(g: int, t: int):
            c = carries[g]
            if t % h == 0:
                rows[g].setdefault("segment_memory", []).append(c.memory)
            pending[g] = self._act(params, c.obs, c.reset, c.memory, c.prev_action, c.prev_reward, step_keys[g][t])

        for g in range(n_groups):
            dispatch(g, 0)
        zeros = [jnp.zeros((g.num_envs,), jnp.float32) for g in self.groups]
        for t in range(steps):
            for g, env in enumerate(self.groups):
                c = carries[g]
                t0 = time.perf_counter()
                action_dev, logp, value, memory = pending[g]
                action = np.asarray(action_dev)
                t0 = self._tick("policy", t0)
                obs, reward, terminated, truncated, info = env.step(action)
                t0 = self._tick("env", t0)
                done = terminated | truncated
                tv = zeros[g]
                if truncated.any():
                    tv = self._value(params, info["final_observation"], np.zeros_like(c.reset), memory, action, reward)
                row = {"obs": c.obs, "reset": c.reset, "prev_action": c.prev_action, "prev_reward": c.prev_reward}
                row.update(action=action, logp=logp, value=value, reward=reward, terminated=terminated)
                row.update(truncated=truncated, truncated_value=tv, success=info["success"])
                row.update(episode_return=info["episode_return"])
                for name, v in row.items():
                    rows[g].setdefault(name, []).append(v)
                carries[g] = GroupCarry(
                    obs, done, memory, np.where(done, -1, action).astype(np.int32),
                    np.where(done, 0.0, reward).astype(np.float32),
                )  # fmt: skip
                if t + 1 < steps:
                    dispatch(g, t + 1)
                self._tick("transfer", t0)
        for g in range(n_groups):
            c = carries[g]
            rows[g]["last_value"] = self._value(params, c.obs, c.reset, c.memory, c.prev_action, c.prev_reward)
        return rows, carries, key

    def batch(self, rows: list[dict]) -> tuple[Transition, Any, Any]:
        """Stack per-step rows to time-major [T, B] (groups side by side on B); memory [T/H * B, ...] (s = i B + b)."""
        fields = [f.name for f in dataclasses.fields(Transition)]

        def stack(name):
            parts = [np.stack(r[name]) if isinstance(r[name][0], np.ndarray) else jnp.stack(r[name]) for r in rows]
            return jnp.concatenate([jnp.asarray(p) for p in parts], axis=1)

        trs = Transition(**{name: stack(name) for name in fields if name in rows[0]})  # no mask: host envs have none
        per_group = [jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *r["segment_memory"]) for r in rows]
        seg_mem = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *per_group)  # [n, B, ...]
        seg_mem = jax.tree_util.tree_map(lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), seg_mem)
        last_value = jnp.concatenate([r["last_value"] for r in rows])
        return trs, seg_mem, last_value

    def iteration(self, state: HostState) -> tuple[HostState, dict]:
        """One rollout of tcfg.rollout_steps steps from every row, then one jitted update."""
        key, k_roll, k_upd = jax.random.split(state.key, 3)
        rows, carries, _ = self.collect(state.params, list(state.carries), k_roll, self.tcfg.rollout_steps)
        t0 = time.perf_counter()
        trs, seg_mem, last_value = self.batch(rows)
        t0 = self._tick("transfer", t0)
        params, opt_state, metrics = self._learn(
            state.params, state.opt_state, trs, seg_mem, last_value, k_upd, state.iteration
        )
        metrics = jax.tree_util.tree_map(np.asarray, jax.block_until_ready(metrics))
        self._tick("update", t0)
        new = HostState(params, opt_state, key, state.iteration + 1, carries)
        return new, {k: float(v) for k, v in metrics.items()}

    def evaluate(self, params, env, steps: int) -> dict[str, float]:
        """Greedy (argmax) actions on host env `env` (reset here) for `steps` steps: mean return / success of the
        episodes that ended."""
        obs, n = env.reset(), env.num_envs
        reset, memory = np.ones(n, bool), initial_memory(self.cfg, n)
        prev_action, prev_reward = np.full(n, -1, np.int32), np.zeros(n, np.float32)
        returns, success = [], []
        for _ in range(steps):
            action, memory = self._greedy(params, obs, reset, memory, prev_action, prev_reward)
            action = np.asarray(action)
            obs, reward, terminated, truncated, info = env.step(action)
            reset = terminated | truncated
            returns.extend(info["episode_return"][reset].tolist())
            success.extend(info["success"][reset].tolist())
            prev_action = np.where(reset, -1, action).astype(np.int32)
            prev_reward = np.where(reset, 0.0, reward).astype(np.float32)
        count = len(returns)
        mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
        return {"episodes": count, "episode_return": mean(returns), "success": mean(success)}

    def close(self) -> None:
        for g in self.groups:
            g.close()
