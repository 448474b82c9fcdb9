"""Torch-vectorised twins of jax_tx/envs/memory_tasks.py: T-Maze and RepeatPrevious, B envs in one object.

Same dynamics, rewards, time limit, auto-reset and info as the JAX tasks (jax_tx/envs/base.py), but batched
tensors and a torch.Generator instead of vmapped pure functions (so the random draws differ):

    env = TMaze(num_envs, corridor_length=4, generator=torch.Generator().manual_seed(0))
    obs = env.reset()                                             # float32 [B, obs_dim]
    obs, reward, terminated, truncated, info = env.step(action)   # action int64 [B]
    info: final_observation [B, obs_dim], success [B], episode_return [B], episode_length [B]

Each step: the raw transition, then time += 1, truncated = (time >= max_steps) and not terminated, and the
envs that are done start a fresh episode (their returned obs is the new episode's first observation).
"""

from __future__ import annotations

import math

import torch

FORWARD, LEFT, RIGHT = 0, 1, 2


class VecTask:
    """Episode bookkeeping shared by the tasks: time, return, the time limit and auto-reset."""

    obs_dim: int
    num_actions: int
    max_steps: int

    def __init__(self, num_envs: int, generator: torch.Generator | None = None):
        self.num_envs = num_envs
        self.gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.time = torch.zeros(num_envs, dtype=torch.int64)
        self.episode_return = torch.zeros(num_envs)
        self.obs = torch.zeros(num_envs, self.obs_dim)

    def reset(self) -> torch.Tensor:
        """Start every env: obs [B, obs_dim]."""
        everyone = torch.ones(self.num_envs, dtype=torch.bool)
        self.obs = self.init_episodes(everyone)
        self.time.zero_()
        self.episode_return.zero_()
        return self.obs.clone()

    def step(self, action: torch.Tensor):
        """One auto-resetting step of every env (module docstring)."""
        obs, reward, terminated, success = self.transition(action.long())
        self.time += 1
        self.episode_return += reward
        truncated = (self.time >= self.max_steps) & ~terminated
        done = terminated | truncated
        info = {
            "final_observation": obs.clone(),
            "success": torch.where(done, success.float(), 0.0),
            "episode_return": torch.where(done, self.episode_return, 0.0),
            "episode_length": torch.where(done, self.time, 0),
        }
        if bool(done.any()):
            fresh = self.init_episodes(done)
            obs = torch.where(done[:, None], fresh, obs)
            self.time = torch.where(done, 0, self.time)
            self.episode_return = torch.where(done, 0.0, self.episode_return)
        self.obs = obs
        return obs.clone(), reward, terminated, truncated, info


class TMaze(VecTask):
    """jax_tx.envs.memory_tasks.TMaze for B envs: obs [cue_left, cue_right, in_corridor, at_junction];
    a turn at the junction gives correct_reward / wrong_reward, every other step step_reward (<= 0)."""

    def __init__(
        self,
        num_envs: int,
        corridor_length: int = 4,
        max_steps: int = 0,
        correct_reward: float = 1.0,
        wrong_reward: float = -1.0,
        step_reward: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        if not (isinstance(corridor_length, int) and corridor_length >= 1):
            raise ValueError(f"tmaze corridor_length must be an int >= 1, got {corridor_length!r}")
        self.corridor_length = corridor_length
        self.max_steps = max_steps or 4 * (corridor_length + 1)
        if self.max_steps < corridor_length + 1:
            raise ValueError(f"tmaze max_steps={self.max_steps} is shorter than corridor_length + 1")
        if not (isinstance(step_reward, (int, float)) and math.isfinite(step_reward) and step_reward <= 0):
            raise ValueError(f"tmaze step_reward must be a finite number <= 0 (a per-step cost), got {step_reward!r}")
        self.correct_reward, self.wrong_reward, self.step_reward = correct_reward, wrong_reward, step_reward
        self.obs_dim, self.num_actions = 4, 3
        self.cue = torch.zeros(num_envs, dtype=torch.int64)
        self.pos = torch.zeros(num_envs, dtype=torch.int64)
        super().__init__(num_envs, generator)

    def _observe(self, pos: torch.Tensor) -> torch.Tensor:
        at_junction = (pos >= self.corridor_length).float()
        zero = torch.zeros_like(at_junction)
        return torch.stack([zero, zero, 1.0 - at_junction, at_junction], dim=-1)

    def init_episodes(self, which: torch.Tensor) -> torch.Tensor:
        """Draw cues for the envs in `which` and put them at position 0; returns their first obs (all rows)."""
        cue = torch.randint(0, 2, (self.num_envs,), generator=self.gen)
        self.cue = torch.where(which, cue, self.cue)
        self.pos = torch.where(which, 0, self.pos)
        obs = self._observe(torch.zeros_like(self.pos))
        return obs.scatter(1, cue[:, None], 1.0)

    def transition(self, action: torch.Tensor):
        at_junction = self.pos >= self.corridor_length
        self.pos = torch.where(action == FORWARD, torch.clamp(self.pos + 1, max=self.corridor_length), self.pos)
        turned = at_junction & ((action == LEFT) | (action == RIGHT))
        correct = turned & (action - LEFT == self.cue)
        reward = torch.where(turned, torch.where(correct, self.correct_reward, self.wrong_reward), self.step_reward)
        return self._observe(self.pos), reward.float(), turned, correct


class RepeatPrevious(VecTask):
    """jax_tx.envs.memory_tasks.RepeatPrevious for B envs: act symbol_{t-k}; obs one_hot(symbol_t)."""

    def __init__(
        self,
        num_envs: int,
        k: int = 4,
        num_symbols: int = 4,
        episode_length: int = 16,
        success_fraction: float = 0.9,
        generator: torch.Generator | None = None,
    ):
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"repeat_previous k must be an int >= 1, got {k!r}")
        if episode_length <= k:
            raise ValueError(f"repeat_previous episode_length={episode_length} must exceed k={k}")
        self.k, self.num_symbols, self.episode_length = k, num_symbols, episode_length
        self.max_steps = episode_length
        scored = episode_length - k
        self.needed = min(scored, max(0, math.ceil(success_fraction * scored - 1e-9)))
        self.obs_dim = self.num_actions = num_symbols
        self.history = torch.zeros(num_envs, k + 1, dtype=torch.int64)
        self.num_correct = torch.zeros(num_envs, dtype=torch.int64)
        super().__init__(num_envs, generator)

    def _one_hot(self, symbol: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(symbol, self.num_symbols).float()

    def init_episodes(self, which: torch.Tensor) -> torch.Tensor:
        symbol = torch.randint(0, self.num_symbols, (self.num_envs,), generator=self.gen)
        fresh = torch.zeros_like(self.history)
        fresh[:, 0] = symbol
        self.history = torch.where(which[:, None], fresh, self.history)
        self.num_correct = torch.where(which, 0, self.num_correct)
        return self._one_hot(symbol)

    def transition(self, action: torch.Tensor):
        scored = self.time >= self.k
        correct = scored & (action == self.history[:, self.k])
        scale = 1.0 / (self.episode_length - self.k)
        reward = torch.where(scored, torch.where(correct, scale, -scale), 0.0).float()
        self.num_correct = self.num_correct + correct.long()
        terminated = self.time + 1 >= self.episode_length
        success = self.num_correct >= self.needed
        symbol = torch.randint(0, self.num_symbols, (self.num_envs,), generator=self.gen)
        self.history = torch.cat([symbol[:, None], self.history[:, : self.k]], dim=1)
        return self._one_hot(symbol), reward, terminated, success


TASKS = {"tmaze": TMaze, "repeat_previous": RepeatPrevious}


def make_env(name: str, num_envs: int, seed: int = 0, **kwargs) -> VecTask:
    """The torch twin of jax_tx.envs.make_env(name, **kwargs), batched over num_envs."""
    if name not in TASKS:
        raise ValueError(f"torch_ref.envs has no env {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name](num_envs, generator=torch.Generator().manual_seed(seed), **kwargs)
