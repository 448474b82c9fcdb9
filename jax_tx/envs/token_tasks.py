"""A JAX-native memory task with Metta-style token observations (for policies with encoder="tokens").

Observation uint8[num_tokens, 3]: one token per feature, [packed coordinate (x << 4 | y), attribute id, value],
padding tokens (three 0xFF bytes) in between, all in a random order drawn afresh every step.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jax_tx.envs.base import TaskEnv
from jax_tx.envs.memory_tasks import FORWARD, LEFT, RIGHT

AGENT, CUE_LEFT, CUE_RIGHT, JUNCTION = 1, 2, 3, 4
"""Attribute ids of the four kinds of feature token."""
PAD = 0xFF


@dataclasses.dataclass(frozen=True)
class TokenTMaze(TaskEnv):
    """T-Maze (as `TMaze`) seen through tokens on an 11 x 11 grid (Metta's coordinate range).

    Tokens per step: the agent at (x = position, y = 0) with attribute AGENT and value 1 + position; the
    junction at (x = corridor_length, y = 0) with attribute JUNCTION; on the first step of an episode only, the
    cue at (0, 1) with attribute CUE_LEFT or CUE_RIGHT; the rest padding. The token order is a fresh random
    permutation each step, so a policy must read tokens by content, not slot. Actions, rewards, termination
    and success as in `TMaze`: a memoryless policy's success is at most 0.5.
    """

    corridor_length: int = 4
    num_tokens: int = 6
    max_steps: int = 0  # 0 means 4 * (corridor_length + 1)
    correct_reward: float = 1.0
    wrong_reward: float = -1.0
    name: str = "token_tmaze"
    num_actions: int = dataclasses.field(default=3, init=False)
    obs_dtype = jnp.uint8

    def __post_init__(self):
        if not (isinstance(self.corridor_length, int) and 1 <= self.corridor_length <= 10):
            raise ValueError(
                f"token_tmaze corridor_length must be an int in 1..10 (grid 11), got {self.corridor_length!r}"
            )
        if not (isinstance(self.num_tokens, int) and self.num_tokens >= 3):
            raise ValueError(
                f"token_tmaze num_tokens must be an int >= 3 (agent, junction, cue), got {self.num_tokens!r}"
            )
        if self.max_steps == 0:
            object.__setattr__(self, "max_steps", 4 * (self.corridor_length + 1))
        if self.max_steps < self.corridor_length + 1:
            raise ValueError(
                f"token_tmaze max_steps={self.max_steps} is shorter than the shortest episode "
                f"({self.corridor_length + 1}); raise max_steps or pass 0 for the default"
            )

    @property
    def obs_dim(self) -> int:
        return self.num_tokens

    def _observe(self, key: jax.Array, pos: jax.Array, cue: jax.Array, show_cue: jax.Array) -> jax.Array:
        """uint8[num_tokens, 3]: agent, junction and (if show_cue) cue tokens, padding, randomly permuted."""
        agent = jnp.stack([pos * 16, jnp.asarray(AGENT), 1 + pos])
        junction = jnp.asarray([self.corridor_length * 16, JUNCTION, 1])
        cue_token = jnp.where(show_cue, jnp.stack([jnp.asarray(1), CUE_LEFT + cue, jnp.asarray(1)]), PAD)
        pads = jnp.full((self.num_tokens - 3, 3), PAD)
        tokens = jnp.concatenate([agent[None], junction[None], cue_token[None], pads]).astype(jnp.uint8)
        return tokens[jax.random.permutation(key, self.num_tokens)]

    def init_episode(self, key: jax.Array):
        key_cue, key_order = jax.random.split(key)
        cue = jax.random.bernoulli(key_cue).astype(jnp.int32)
        pos = jnp.zeros((), jnp.int32)
        return self._observe(key_order, pos, cue, jnp.asarray(True)), {"cue": cue, "pos": pos}

    def transition(self, key, inner, time, action):
        del time
        at_junction = inner["pos"] >= self.corridor_length
        pos = jnp.where(action == FORWARD, jnp.minimum(inner["pos"] + 1, self.corridor_length), inner["pos"])
        turned = at_junction & ((action == LEFT) | (action == RIGHT))
        correct = turned & (action - LEFT == inner["cue"])
        reward = jnp.where(turned, jnp.where(correct, self.correct_reward, self.wrong_reward), 0.0)
        obs = self._observe(key, pos, inner["cue"], jnp.asarray(False))
        return obs, {"cue": inner["cue"], "pos": pos}, reward, turned, correct
