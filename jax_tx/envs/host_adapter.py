"""Host adapter: a Gymnasium vector env (numpy, stepped outside jit) behind the jax_tx step semantics.

For environments that are not written in JAX: the policy step stays jitted on the device, the env steps on the
host in numpy, and `collect` moves observations and actions between the two each step.

    env = HostVectorEnv("CartPole-v1", num_envs=8, seed=0)
    obs = env.reset()                                   # float32[N, obs_dim]
    obs, reward, terminated, truncated, info = env.step(actions)   # actions int[N]

Attributes: obs_dim, num_actions, max_steps, name, num_envs (as in `jax_tx.envs.base.Env`, plus the batch size).
`step` returns numpy arrays: obs float32[N, obs_dim] (already reset where an episode ended), reward float32[N],
terminated bool[N], truncated bool[N] (at most one of the two is True per env), and info with the same keys as the
JAX envs: final_observation float32[N, obs_dim] (the pre-reset obs; equals obs where no episode ended), success
float32[N], episode_return float32[N], episode_length int32[N] (nonzero only where an episode ended).
Success: episode return >= success_return (default: the Gymnasium spec's reward_threshold, e.g. 475 for
CartPole-v1; +inf when the spec has none, i.e. never).
The wrapped vector env must auto-reset in the same step (Gymnasium's AutoresetMode.SAME_STEP); built from an id,
it is created that way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def _import_gymnasium():
    """Import gymnasium or explain how to install it."""
    try:
        import gymnasium
    except ImportError as err:
        raise ImportError("HostVectorEnv needs gymnasium: pip install 'gymnasium==1.3.0'") from err
    return gymnasium


class HostVectorEnv:
    """A Gymnasium vector env with discrete actions, giving jax_tx-style numpy steps (see the module docstring)."""

    def __init__(
        self,
        env: str | Any,
        num_envs: int = 8,
        seed: int = 0,
        success_return: float | None = None,
        max_steps: int | None = None,
        **make_kwargs,
    ):
        """env: a Gymnasium id (built with gymnasium.make_vec, sync, SAME_STEP auto-reset) or a VectorEnv."""
        gym = _import_gymnasium()
        same_step = gym.vector.AutoresetMode.SAME_STEP
        if isinstance(env, str):
            env = gym.make_vec(
                env, num_envs, vectorization_mode="sync", vector_kwargs={"autoreset_mode": same_step}, **make_kwargs
            )
        if env.metadata.get("autoreset_mode") != same_step:
            raise ValueError(
                f"HostVectorEnv needs a vector env with autoreset_mode=SAME_STEP, got "
                f"{env.metadata.get('autoreset_mode')}; build it with vector_kwargs={{'autoreset_mode': "
                "gymnasium.vector.AutoresetMode.SAME_STEP}} or pass a Gymnasium id"
            )
        action_space = env.single_action_space
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"HostVectorEnv needs a Discrete action space, got {action_space}")
        self._obs_space = env.single_observation_space
        if not isinstance(self._obs_space, gym.spaces.Box | gym.spaces.Discrete):
            raise ValueError(f"HostVectorEnv supports Box or Discrete observations, got {self._obs_space}")
        self._one_hot = isinstance(self._obs_space, gym.spaces.Discrete)
        sub_envs = getattr(env, "envs", None)  # sync vector envs: the sub-env spec holds the real time limit
        spec = sub_envs[0].spec if sub_envs and sub_envs[0].spec is not None else getattr(env, "spec", None)
        self.env = env
        self.num_envs = int(env.num_envs)
        self.num_actions = int(action_space.n)
        self.obs_dim = int(gym.spaces.flatdim(self._obs_space))
        self.name = spec.id if spec is not None else type(env).__name__
        self.max_steps = int(max_steps or (spec.max_episode_steps if spec and spec.max_episode_steps else 0))
        threshold = spec.reward_threshold if spec is not None else None
        self.success_return = float(success_return if success_return is not None else (threshold or math.inf))
        self._seed = seed
        self._episode_return = np.zeros(self.num_envs, np.float32)
        self._episode_length = np.zeros(self.num_envs, np.int32)

    def _flat(self, obs: Any) -> np.ndarray:
        """Batched observations as float32[N, obs_dim] (Discrete observations one-hot)."""
        obs = np.asarray(obs)
        if self._one_hot:
            return np.eye(self.obs_dim, dtype=np.float32)[obs.astype(np.int64).reshape(-1)]
        return obs.reshape(obs.shape[0], -1).astype(np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset all envs (seeded with `seed`, default the constructor's) and return obs float32[N, obs_dim]."""
        obs, _ = self.env.reset(seed=self._seed if seed is None else seed)
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        return self._flat(obs)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Step all envs with int actions[N]; returns (obs, reward, terminated, truncated, info) as numpy."""
        actions = np.asarray(actions).astype(np.int64).reshape(self.num_envs)
        obs, reward, terminated, truncated, raw_info = self.env.step(actions)
        obs = self._flat(obs)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool) & ~terminated
        done = terminated | truncated
        final_obs = obs.copy()
        for i in np.flatnonzero(raw_info.get("_final_obs", np.zeros(self.num_envs, bool))):
            final_obs[i] = self._flat(np.asarray(raw_info["final_obs"][i])[None])[0]
        info = episode_info(self._episode_return, self._episode_length, reward, done, final_obs, self.success_return)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Close the wrapped vector env."""
        self.env.close()


PolicyStep = Callable[[Any, Any, Any, Any], tuple[Any, Any, dict[str, Any]]]


def collect(
    env: HostVectorEnv, policy_step: PolicyStep, carry: Any, obs: np.ndarray, first: np.ndarray, key: Any, steps: int
) -> tuple[dict[str, np.ndarray], Any, np.ndarray, np.ndarray, Any]:
    """Roll `steps` steps of a (jitted) device policy against a host env.

    policy_step(carry, obs float32[N, obs_dim], first bool[N], key) -> (carry, actions int[N], extras dict of [N, ...])
    is called once per step (jit it yourself; `first[i]` is True where obs[i] starts an episode, the model's reset
    flag). Returns (trajectory, carry, obs, first, key): trajectory maps obs, first, actions, reward, terminated,
    truncated, every info key and every extras key to numpy arrays [steps, N, ...]; the last obs / first / key
    continue the next call. Start with obs = env.reset(), first = all True.
    """
    import jax

    rows: dict[str, list] = {}
    for _ in range(steps):
        key, step_key = jax.random.split(key)
        carry, actions, extras = policy_step(carry, obs, first, step_key)
        actions = np.asarray(actions)
        next_obs, reward, terminated, truncated, info = env.step(actions)
        row = {"obs": obs, "first": first, "actions": actions, "reward": reward, "terminated": terminated}
        row.update(truncated=truncated, **info, **{k: np.asarray(v) for k, v in extras.items()})
        for name, value in row.items():
            rows.setdefault(name, []).append(value)
        obs, first = next_obs, terminated | truncated
    return {name: np.stack(values) for name, values in rows.items()}, carry, obs, first, key


def episode_info(episode_return, episode_length, reward, done, final_obs, success_return: float) -> dict:
    """One host step's info; updates the running per-row return R += r and length L += 1 in place.

    Rows whose episode ends (done) report R, L and success = R >= success_return, others 0; their R and L
    restart at 0. The info keys are the JAX envs' (jax_tx.envs.base.INFO_KEYS).
    """
    episode_return += reward
    episode_length += 1
    ended_return = np.where(done, episode_return, 0.0).astype(np.float32)
    info = {
        "final_observation": final_obs,
        "success": (done & (ended_return >= success_return)).astype(np.float32),
        "episode_return": ended_return,
        "episode_length": np.where(done, episode_length, 0).astype(np.int32),
    }
    episode_return[done] = 0.0
    episode_length[done] = 0
    return info
