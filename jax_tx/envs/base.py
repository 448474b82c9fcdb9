"""The environment interface every jax_tx env follows, and the shared auto-reset step.

An env is a single (unbatched) environment; learners `jax.vmap` over it. The env object is static,
hashable configuration (a frozen dataclass); all mutable state is the explicit `state` pytree.

    env = jax_tx.envs.make_env("tmaze", corridor_length=4)
    obs, state = env.reset(key)                         # obs float32[obs_dim]
    obs, state, reward, terminated, truncated, info = env.step(key, state, action)   # action int32[]

Contract of `step` (all returned leaves are jax arrays, so `step` jits and scans):
- reward float32[], terminated bool[], truncated bool[].
- At most one of `terminated` / `truncated` is True. `terminated`: the episode reached a terminal state (do not
  bootstrap). `truncated`: the time limit `max_steps` cut the episode (bootstrap from `info["final_observation"]`).
- Auto-reset: when terminated or truncated, the returned `obs` / `state` are those of a fresh episode.
- `info` has the same keys, shapes and dtypes on every step:
    final_observation float32[obs_dim]  the observation before any reset (equals `obs` on non-final steps)
    success           float32[]         1.0 at the final step of an episode that succeeded, else 0.0
    episode_return    float32[]         the undiscounted return of the episode ending at this step, else 0.0
    episode_length    int32[]           the number of steps of the episode ending at this step, else 0

Summary statistics for logging: mean return = sum(episode_return) / sum(terminated | truncated), likewise success.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

INFO_KEYS = ("final_observation", "success", "episode_return", "episode_length")


@runtime_checkable
class Env(Protocol):
    """What a learner may rely on. Attributes are plain Python values; methods are pure and jittable."""

    obs_dim: int  # length of the flat float32 observation vector (token envs: tokens per step, obs uint8[obs_dim, 3])
    num_actions: int  # discrete actions 0 .. num_actions - 1
    max_steps: int  # episode step limit; reaching it without termination gives truncated=True
    name: str  # the name make_env was given, e.g. "tmaze" or "gymnax:CartPole-v1"

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """Start an episode: (obs float32[obs_dim], state)."""
        ...

    def step(
        self, key: jax.Array, state: Any, action: jax.Array
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        """One auto-resetting step: (obs, state, reward, terminated, truncated, info); see the module docstring."""
        ...


@struct.dataclass
class EpisodeState:
    """The state wrapper shared by all envs: the task's own state plus episode bookkeeping.

    inner: the task (or wrapped library env) state pytree.
    time: int32[], steps taken so far in the current episode.
    episode_return: float32[], undiscounted reward summed so far in the current episode.
    """

    inner: Any
    time: jax.Array
    episode_return: jax.Array


def start_episode(inner: Any) -> EpisodeState:
    """Wrap a fresh task state into an EpisodeState at time 0 with zero return."""
    return EpisodeState(inner=inner, time=jnp.zeros((), jnp.int32), episode_return=jnp.zeros((), jnp.float32))


def select_tree(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise `where(pred, on_true, on_false)` over two pytrees of the same structure (pred is a scalar)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def finish_step(
    state: EpisodeState,
    obs: jax.Array,
    inner: Any,
    reward: jax.Array,
    terminated: jax.Array,
    success: jax.Array,
    reset_obs: jax.Array,
    reset_inner: Any,
    max_steps: int,
    obs_dtype: Any = jnp.float32,
) -> tuple[jax.Array, EpisodeState, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
    """Apply the time limit, auto-reset and episode bookkeeping after one raw task transition.

    state: the EpisodeState before the step. obs / inner / reward / terminated: the raw transition's results.
    success: float or bool[], whether the episode succeeded if it ends at this step (ignored otherwise).
    reset_obs / reset_inner: a fresh episode to switch to when the episode ends.
    Returns the full `Env.step` tuple; truncated = (time + 1 >= max_steps) and not terminated.
    obs_dtype: float32 for flat observations, uint8 for token observations.
    """
    obs = obs.astype(obs_dtype)
    reward = jnp.asarray(reward, jnp.float32).reshape(())
    terminated = jnp.asarray(terminated, jnp.bool_).reshape(())
    time = state.time + 1
    episode_return = state.episode_return + reward
    truncated = (time >= max_steps) & ~terminated
    done = terminated | truncated
    info = {
        "final_observation": obs,
        "success": jnp.where(done, jnp.asarray(success, jnp.float32).reshape(()), 0.0),
        "episode_return": jnp.where(done, episode_return, 0.0),
        "episode_length": jnp.where(done, time, 0).astype(jnp.int32),
    }
    continued = EpisodeState(inner=inner, time=time, episode_return=episode_return)
    new_state = select_tree(done, start_episode(reset_inner), continued)
    new_obs = jnp.where(done, reset_obs.astype(obs_dtype), obs)
    return new_obs, new_state, reward, terminated, truncated, info


class TaskEnv:
    """Mixin turning a raw task (`init_episode`, `transition`) into the auto-resetting `Env` interface.

    Subclasses (frozen dataclasses) define `max_steps` and:
      init_episode(key) -> (obs float32[obs_dim], inner)
      transition(key, inner, time, action) -> (obs, inner, reward float32[], terminated bool[], success bool[])
    where `time` is the number of steps already taken in the episode (0 on the first step).
    Token-observation tasks set `obs_dtype = jnp.uint8` (obs uint8[obs_dim, 3]).
    """

    obs_dtype = jnp.float32

    def reset(self, key: jax.Array) -> tuple[jax.Array, EpisodeState]:
        """Start an episode: (obs float32[obs_dim], EpisodeState at time 0)."""
        obs, inner = self.init_episode(key)
        return obs.astype(self.obs_dtype), start_episode(inner)

    def step(
        self, key: jax.Array, state: EpisodeState, action: jax.Array
    ) -> tuple[jax.Array, EpisodeState, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        """One auto-resetting step (see the module docstring for the returned tuple and info keys)."""
        key_step, key_reset = jax.random.split(key)
        action = jnp.asarray(action, jnp.int32).reshape(())
        obs, inner, reward, terminated, success = self.transition(key_step, state.inner, state.time, action)
        reset_obs, reset_inner = self.init_episode(key_reset)
        return finish_step(
            state, obs, inner, reward, terminated, success, reset_obs, reset_inner, self.max_steps, self.obs_dtype
        )
