"""Adapter from gymnax 1.0.1 environments to the jax_tx `Env` interface.

    env = make_gymnax("MemoryChain-bsuite", memory_length=16)   # or make_env("gymnax:MemoryChain-bsuite", ...)

- Keyword arguments that name a field of the env's gymnax `EnvParams` (e.g. MemoryChain's `memory_length`,
  `max_steps_in_episode`) are applied with `params.replace(...)`; all others go to the gymnax env constructor
  (e.g. MemoryChain's `num_bits`). The params are carried inside the adapter.
- Observations are flattened to float32[obs_dim] (MinAtar's bool[10, 10, C] grids become 0/1 vectors).
- Only discrete-action envs are accepted.
- The adapter drives gymnax's raw `reset_env` / `step_env` and applies the jax_tx time limit, auto-reset and
  bookkeeping (`jax_tx.envs.base.finish_step`), so terminated / truncated / final_observation follow the jax_tx
  contract (truncated = time limit `params.max_steps_in_episode` reached and not terminated).
- Success: episode return >= `success_return`. Defaults (SUCCESS_RETURNS): CartPole-v1 475 (Gymnasium's
  solved threshold), MemoryChain-bsuite 1 (the final answer was right), Catch-bsuite 1, Acrobot-v1 -100,
  MountainCar-v0 -110; for other envs the default is +inf, i.e. success is always 0 unless you pass one.

Install: gymnax 1.0.1 imports `six` without declaring it (both are jax_tx dependencies). Never install
popgym-arcade / stable-gymnax in the same environment: it overwrites the `gymnax` package with an older API.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.envs.base import EpisodeState, finish_step, start_episode

PREFIX = "gymnax:"
SUCCESS_RETURNS = {
    "CartPole-v1": 475.0,
    "MemoryChain-bsuite": 1.0,
    "Catch-bsuite": 1.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
}


def import_gymnax():
    """Import gymnax, checking that it is the 1.x API (terminated/truncated), not stable-gymnax's overwrite."""
    try:
        import gymnax
    except ImportError as err:  # e.g. the undeclared `six` dependency
        raise ImportError(
            f"gymnax environments need gymnax 1.0.1 and six: pip install 'gymnax==1.0.1' six ({err})"
        ) from err
    from gymnax.environments import environment

    if not hasattr(environment.Environment, "is_truncated"):
        raise ImportError(
            "the installed `gymnax` package has the old 5-value step API (stable-gymnax, a popgym-arcade "
            "dependency, overwrites gymnax's files). Uninstall popgym-arcade and stable-gymnax, then "
            "pip install --force-reinstall 'gymnax==1.0.1' six"
        )
    return gymnax


def registered_gymnax_names() -> tuple[str, ...]:
    """gymnax's registered env ids, or () when gymnax is not installed."""
    try:
        return tuple(import_gymnax().registered_envs)
    except ImportError:
        return ()


@dataclasses.dataclass(frozen=True, eq=False)
class GymnaxEnv:
    """A gymnax environment with its params, behind the jax_tx `Env` interface (see the module docstring).

    Hashing and equality are by identity (gymnax params may hold arrays), so the object can be a static jit arg.
    """

    gymnax_env: Any
    params: Any
    name: str
    obs_dim: int
    num_actions: int
    max_steps: int
    success_return: float

    def reset(self, key: jax.Array) -> tuple[jax.Array, EpisodeState]:
        """Start an episode: (flat obs float32[obs_dim], EpisodeState wrapping the gymnax state)."""
        obs, inner = self.gymnax_env.reset_env(key, self.params)
        return _flatten(obs), start_episode(inner)

    def step(self, key: jax.Array, state: EpisodeState, action: jax.Array):
        """One auto-resetting step: (obs, state, reward, terminated, truncated, info) per jax_tx.envs.base."""
        key_step, key_reset = jax.random.split(key)
        action = jnp.asarray(action, jnp.int32).reshape(())
        obs, inner, reward, terminated, _ = self.gymnax_env.step_env(key_step, state.inner, action, self.params)
        reset_obs, reset_inner = self.gymnax_env.reset_env(key_reset, self.params)
        reward = jnp.asarray(reward, jnp.float32)
        success = state.episode_return + reward >= self.success_return
        return finish_step(
            state, _flatten(obs), inner, reward, terminated, success, _flatten(reset_obs), reset_inner, self.max_steps
        )


def _flatten(obs: Any) -> jax.Array:
    """A gymnax observation (array of any shape and dtype) as a flat float32 vector."""
    return jnp.asarray(obs).astype(jnp.float32).reshape(-1)


def _check_param_value(env_id: str, name: str, current: Any, value: Any) -> None:
    """ValueError unless `value` has the kind (bool / int / float) of the EnvParams field it replaces."""
    try:
        dtype = np.asarray(current).dtype
    except (TypeError, ValueError):
        return
    kind = {"b": bool, "i": int, "u": int, "f": float}.get(dtype.kind)
    if kind is None or np.ndim(current) != 0:
        return
    ok = isinstance(value, bool) if kind is bool else isinstance(value, (int, float) if kind is float else int)
    if not ok or (kind is not bool and isinstance(value, bool)):
        raise ValueError(
            f"gymnax:{env_id} param {name}={value!r} must be a {kind.__name__} like its default {current!r}"
        )


def make_gymnax(env_id: str, success_return: float | None = None, **kwargs) -> GymnaxEnv:
    """Build the adapter for gymnax env `env_id` (without the "gymnax:" prefix); kwargs as in the module doc."""
    gymnax = import_gymnax()
    if env_id not in gymnax.registered_envs:
        raise ValueError(f"unknown gymnax env {env_id!r}; gymnax 1.0.1 has: {', '.join(gymnax.registered_envs)}")
    probe_env, params = gymnax.make(env_id)
    param_fields = {f.name for f in dataclasses.fields(params)}
    param_kwargs = {k: v for k, v in kwargs.items() if k in param_fields}
    ctor_kwargs = {k: v for k, v in kwargs.items() if k not in param_fields}
    if ctor_kwargs:
        try:
            probe_env, params = gymnax.make(env_id, **ctor_kwargs)
        except TypeError as err:
            raise ValueError(
                f"gymnax:{env_id} does not accept {sorted(ctor_kwargs)} ({err}); its params fields are "
                f"{sorted(param_fields)}, the rest must be constructor arguments"
            ) from err
    for k, v in param_kwargs.items():
        _check_param_value(env_id, k, getattr(params, k), v)
    params = params.replace(**param_kwargs)
    action_space = probe_env.action_space(params)
    if not hasattr(action_space, "n"):
        raise ValueError(f"gymnax:{env_id} has a continuous action space; jax_tx envs need discrete actions")
    obs_shape = probe_env.observation_space(params).shape
    if success_return is None:
        success_return = SUCCESS_RETURNS.get(env_id, math.inf)
    return GymnaxEnv(
        gymnax_env=probe_env,
        params=params,
        name=PREFIX + env_id,
        obs_dim=int(np.prod(obs_shape)),
        num_actions=int(action_space.n),
        max_steps=int(params.max_steps_in_episode),
        success_return=float(success_return),
    )
