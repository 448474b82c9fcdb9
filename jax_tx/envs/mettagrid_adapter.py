"""mettagrid (C++ grid world, token observations, many agents per map) behind the host-adapter step semantics.

Each agent of each map is one row of the batch: row r = m * num_agents + i is agent i of map m. Stepped on the
host in numpy (mettagrid is not JAX), like `jax_tx.envs.host_adapter.HostVectorEnv`:

    env = MettaGridVecEnv(num_maps=2, seed=0, num_agents=4)     # arena_config kwargs, or config=MettaGridConfig
    obs = env.reset()                                           # uint8[R, num_tokens, 3], R = num_envs rows
    obs, reward, terminated, truncated, info = env.step(actions)   # actions int[R]

Observations are mettagrid's tokens passed through unchanged (byte 0 packed location, 0xFE a global token,
0xFF padding; byte 1 feature id; byte 2 value), for `encoder="tokens"` (see `policy_overrides`). A map's episode
ends for all its agents at once (mettagrid's is_done); on that step its rows report mettagrid's terminals and
truncations (kept apart: truncated = truncation and not terminal), info["final_observation"] holds the last
observation of the episode, and obs is the first observation of a new episode on a new map (the next seed).
info as the JAX envs: final_observation, success (episode_return >= success_return, default 0.95: in the arena at
least one heart, whatever the shaping adds), episode_return,
episode_length (nonzero only where an episode ended). Attributes: obs_dim (tokens per agent), num_actions,
max_steps, name, obs_dtype (uint8: token observations), num_envs (rows), num_maps, num_agents.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jax_tx.envs.host_adapter import episode_info
from jax_tx.envs.mettagrid_arena import arena_config, import_mettagrid

TOKEN_GRID_SIZE = 16
"""Coordinates are nibbles (x = byte >> 4, y = byte & 15): the global token 0xFE sits at (15, 14)."""


class MettaGridVecEnv:
    """num_maps mettagrid simulations, their agents as rows of one batch (see the module docstring)."""

    def __init__(
        self, config: Any = None, num_maps: int = 1, seed: int = 0, success_return: float = 0.95, **arena_kwargs
    ):
        import_mettagrid()
        from mettagrid.simulator import Simulator

        if config is None:
            config = arena_config(**arena_kwargs)
        elif arena_kwargs:
            raise ValueError(f"pass either config or arena kwargs, not both (got {sorted(arena_kwargs)})")
        if num_maps < 1:
            raise ValueError(f"num_maps must be >= 1, got {num_maps}")
        self.config = config.model_copy(deep=True)  # reset() sets its map seed
        self.num_maps = int(num_maps)
        self.num_agents = int(config.game.num_agents)
        self.num_envs = self.num_maps * self.num_agents
        self.max_steps = int(config.game.max_steps)
        self.success_return = float(success_return)
        self.name = f"mettagrid:{config.label}"
        self._simulator = Simulator()
        self._seed = int(seed)
        self._next_seed = self._seed
        self._sims: list[Any] = []
        probe = self._simulator.new_simulation(config, seed=self._seed % 2**31)
        self.action_names = list(probe.action_names)
        self.num_actions = len(self.action_names)
        self.obs_dim = int(probe.num_observation_tokens)
        self.obs_dtype = np.uint8
        self.features = {int(f.id): (f.name, float(f.normalization)) for f in probe.features}
        probe.close()
        self._episode_return = np.zeros(self.num_envs, np.float32)
        self._episode_length = np.zeros(self.num_envs, np.int32)

    @property
    def value_norms(self) -> tuple[float, ...]:
        """Divisor of each feature id's value byte (mettagrid's feature normalizations; 1.0 for unused ids)."""
        norms = [1.0] * (max(self.features) + 1)
        for fid, (_, norm) in self.features.items():
            norms[fid] = norm if norm > 0 else 1.0
        return tuple(norms)

    def policy_overrides(self) -> dict[str, Any]:
        """PolicyConfig fields this env fixes: the token encoder over obs_dim tokens, grid 16, value norms."""
        return {
            "encoder": "tokens",
            "obs_dim": self.obs_dim,
            "num_actions": self.num_actions,
            "token_grid_size": TOKEN_GRID_SIZE,
            "token_value_norms": self.value_norms,
        }

    def _rows(self, m: int) -> slice:
        return slice(m * self.num_agents, (m + 1) * self.num_agents)

    def _new_sim(self) -> Any:
        sim = self._simulator.new_simulation(self.config, seed=self._next_seed % 2**31)
        self._next_seed += 1
        return sim

    def reset(self, seed: int | None = None) -> np.ndarray:
        """New maps for every simulation (seeds seed, seed + 1, ...; default the constructor's); obs uint8[R, N, 3].

        The k-th simulation after a reset gets sim seed seed + k and, where the map builder takes a seed (mettagrid
        draws a random one when it is None), map seed seed + k: the same seed gives the same maps and dynamics.
        """
        from mettagrid.simulator import Simulator

        self.close()
        self._next_seed = self._seed if seed is None else int(seed)
        self._simulator = Simulator()  # its map-seed offset counts simulations from 0 again
        if "seed" in type(self.config.game.map_builder).model_fields:
            self.config.game.map_builder.seed = self._next_seed % 2**31
        self._sims = [self._new_sim() for _ in range(self.num_maps)]
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        return np.concatenate([sim._c_sim.observations() for sim in self._sims], axis=0)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Step every map with int actions[R]; returns (obs, reward, terminated, truncated, info) as numpy."""
        if not self._sims:
            raise RuntimeError("MettaGridVecEnv.step before reset(); call env.reset() first")
        actions = np.asarray(actions).reshape(self.num_envs)
        if actions.size and (actions.min() < 0 or actions.max() >= self.num_actions):
            raise ValueError(f"actions must be in [0, {self.num_actions}), got {actions.min()}..{actions.max()}")
        obs = np.empty((self.num_envs, self.obs_dim, 3), np.uint8)
        reward = np.empty(self.num_envs, np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        final_obs = obs
        for m, sim in enumerate(self._sims):
            rows, c_sim = self._rows(m), sim._c_sim
            c_sim.actions()[:] = actions[rows]
            try:
                sim.step()
            except RuntimeError as err:
                if "token budget" not in str(err):
                    raise
                raise RuntimeError(f"{err}; raise num_tokens (obs tokens per agent, now {self.obs_dim})") from err
            obs[rows] = c_sim.observations()
            reward[rows] = c_sim.rewards()
            if sim.is_done():
                terminated[rows] = c_sim.terminals()
                truncated[rows] = c_sim.truncations() & ~terminated[rows]
                if final_obs is obs:
                    final_obs = obs.copy()
                final_obs[rows] = obs[rows]
                sim.close()
                self._sims[m] = sim = self._new_sim()
                obs[rows] = sim._c_sim.observations()
        if final_obs is obs:
            final_obs = obs.copy()
        done = terminated | truncated
        info = episode_info(self._episode_return, self._episode_length, reward, done, final_obs, self.success_return)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Close every simulation."""
        for sim in self._sims:
            sim.close()
        self._sims = []
