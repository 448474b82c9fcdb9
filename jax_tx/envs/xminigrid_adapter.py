"""Adapter from xminigrid 0.9.3 environments (JAX-native MiniGrid / XLand-MiniGrid) to the jax_tx `Env` interface.

    env = make_xminigrid("MiniGrid-MemoryS8")   # or make_env("xminigrid:MiniGrid-MemoryS8")

Tested with xminigrid 0.9.3 (tests/test_xminigrid.py) on MiniGrid-MemoryS8; MiniGrid-MemoryS16 is built there and
was stepped by hand (ids as `xminigrid.registered_environments()` spells them: no "-v0" suffix). Other registered
ids (MemoryS32 .. S128, the other MiniGrid and XLand-MiniGrid envs) go through the same code but are untested.

- Keyword arguments are fields of xminigrid's `EnvParams` (height, width, view_size, max_steps), applied by
  `xminigrid.make(id, **kwargs)`, plus `encoding`. Beware: MiniGrid-Memory derives its default max_steps
  (5 * width**2) from the registered width, so passing `width` alone keeps the registered step limit.
- Observation: xminigrid's egocentric symbolic view uint8[V, V, 2] (V = view_size; per cell a tile id < 13 and a
  color id < 12; the agent stands at row V - 1, column V // 2, facing row 0), flattened row-major to float32:
    encoding="tile_onehot" (default): per cell [one_hot(tile, 13), color / 11], obs_dim = V * V * 14.
    encoding="ids": per cell [tile / 12, color / 11], obs_dim = V * V * 2.
  The default one-hots the tile type because tile ids are categories (MiniGrid-Memory's cue is BALL=3 vs KEY=7, its
  walls 2 and floor 1): on one scaled axis a linear layer cannot pick out "key" without also ranking it against
  every other id. 13 floats per cell stay small (126 for Memory's 3x3 view); colors change little within a task
  (Memory's two objects are both green), so they keep one scaled scalar instead of a 12-way one-hot.
- Actions: xminigrid's 6 discrete actions (0 forward, 1 turn right, 2 turn left, 3 pick up, 4 put down, 5 toggle;
  MiniGrid-Memory maps pick up to toggle).
- The adapter drives xminigrid's `reset` / `step` on the TimeStep pytree (kept as the inner state) and applies the
  jax_tx time limit, auto-reset and bookkeeping (`jax_tx.envs.base.finish_step`): terminated = xminigrid's
  discount == 0 (a terminal state); truncated = `params.max_steps` reached and not terminated.
- Success: the episode terminated with a positive reward at its last step. xminigrid's MiniGrid envs pay
  1 - 0.9 * t / max_steps only on reaching the goal; MiniGrid-Memory pays it only at the end of the corridor next
  to the object that matches the one shown at the start, and 0 at the other (which also terminates).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jax_tx.envs.base import EpisodeState, finish_step, start_episode

PREFIX = "xminigrid:"
VERSION = "0.9.3"
ENCODINGS = ("tile_onehot", "ids")
PARAM_FIELDS = ("height", "width", "view_size", "max_steps")


def import_xminigrid():
    """Import xminigrid or explain how to install it."""
    try:
        import xminigrid
    except ImportError as err:
        raise ImportError(f"xminigrid environments need xminigrid: pip install 'xminigrid=={VERSION}' ({err})") from err
    return xminigrid


def registered_xminigrid_names() -> tuple[str, ...]:
    """xminigrid's registered env ids, or () when xminigrid is not installed."""
    try:
        return tuple(import_xminigrid().registered_environments())
    except ImportError:
        return ()


def encode_view(view: jax.Array, encoding: str, num_tiles: int, num_colors: int) -> jax.Array:
    """An xminigrid view uint8[V, V, 2] (tile, color) as a flat float32 vector, per the module docstring.

    tile_onehot: x[v, :] = [1(tile_v == 0), ..., 1(tile_v == num_tiles - 1), color_v / (num_colors - 1)]
    ids:         x[v, :] = [tile_v / (num_tiles - 1), color_v / (num_colors - 1)]
    """
    view = jnp.asarray(view).astype(jnp.int32)
    tile, color = view[..., 0], view[..., 1]
    color = (color / (num_colors - 1)).astype(jnp.float32)[..., None]
    if encoding == "tile_onehot":
        cells = jnp.concatenate([jax.nn.one_hot(tile, num_tiles, dtype=jnp.float32), color], axis=-1)
    else:
        cells = jnp.concatenate([(tile / (num_tiles - 1)).astype(jnp.float32)[..., None], color], axis=-1)
    return cells.reshape(-1)


@dataclasses.dataclass(frozen=True, eq=False)
class XMiniGridEnv:
    """An xminigrid environment with its params, behind the jax_tx `Env` interface (see the module docstring).

    Hashing and equality are by identity, so the object can be a static jit argument.
    """

    xmg_env: Any
    params: Any
    name: str
    obs_dim: int
    num_actions: int
    max_steps: int
    encoding: str
    num_tiles: int
    num_colors: int

    def _obs(self, timestep: Any) -> jax.Array:
        return encode_view(timestep.observation, self.encoding, self.num_tiles, self.num_colors)

    def reset(self, key: jax.Array) -> tuple[jax.Array, EpisodeState]:
        """Start an episode: (flat obs float32[obs_dim], EpisodeState wrapping xminigrid's TimeStep)."""
        timestep = self.xmg_env.reset(self.params, key)
        return self._obs(timestep), start_episode(timestep)

    def step(self, key: jax.Array, state: EpisodeState, action: jax.Array):
        """One auto-resetting step: (obs, state, reward, terminated, truncated, info) per jax_tx.envs.base."""
        action = jnp.asarray(action, jnp.int32).reshape(())
        timestep = self.xmg_env.step(self.params, state.inner, action)
        reset_timestep = self.xmg_env.reset(self.params, key)
        reward = jnp.asarray(timestep.reward, jnp.float32)
        terminated = timestep.discount == 0
        success = terminated & (reward > 0)
        return finish_step(
            state,
            self._obs(timestep),
            timestep,
            reward,
            terminated,
            success,
            self._obs(reset_timestep),
            reset_timestep,
            self.max_steps,
        )


def _check_kwargs(env_id: str, kwargs: dict) -> None:
    """ValueError unless every kwarg names an EnvParams field and holds a positive int."""
    unknown = sorted(set(kwargs) - set(PARAM_FIELDS))
    if unknown:
        raise ValueError(f"xminigrid:{env_id} does not accept {unknown}; its params are {', '.join(PARAM_FIELDS)}")
    for k, v in kwargs.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"xminigrid:{env_id} param {k}={v!r} must be a positive int")


def make_xminigrid(env_id: str, encoding: str = "tile_onehot", **kwargs) -> XMiniGridEnv:
    """Build the adapter for xminigrid env `env_id` (without the "xminigrid:" prefix); kwargs as in the module doc."""
    xminigrid = import_xminigrid()
    from xminigrid.core.constants import NUM_COLORS, NUM_TILES

    names = xminigrid.registered_environments()
    if env_id not in names:
        raise ValueError(f"unknown xminigrid env {env_id!r}; xminigrid {xminigrid.__version__} has: {', '.join(names)}")
    if encoding not in ENCODINGS:
        raise ValueError(f"xminigrid encoding={encoding!r} must be one of {ENCODINGS}")
    _check_kwargs(env_id, kwargs)
    xmg_env, params = xminigrid.make(env_id, **kwargs)
    if params.max_steps is None:
        raise ValueError(f"xminigrid:{env_id} has no default max_steps; pass max_steps=<int>")
    view = int(params.view_size)
    per_cell = NUM_TILES + 1 if encoding == "tile_onehot" else 2
    return XMiniGridEnv(
        xmg_env=xmg_env,
        params=params,
        name=PREFIX + env_id,
        obs_dim=view * view * per_cell,
        num_actions=int(xmg_env.num_actions(params)),
        max_steps=int(params.max_steps),
        encoding=encoding,
        num_tiles=int(NUM_TILES),
        num_colors=int(NUM_COLORS),
    )
