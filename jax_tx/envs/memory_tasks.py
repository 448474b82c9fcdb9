"""JAX-native memory tasks: T-Maze, RepeatPrevious, CountRecall (jittable, vmappable, auto-resetting).

Each task is a frozen dataclass (static, hashable config) following `jax_tx.envs.base.Env`; each has a difficulty
knob such that a memoryless policy (one that sees only the current observation) cannot solve it.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jax_tx.envs.base import TaskEnv

# T-Maze actions.
FORWARD, LEFT, RIGHT = 0, 1, 2


def _check(condition: bool, message: str) -> None:
    """Raise ValueError(message) when a user-given configuration value is invalid."""
    if not condition:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class TMaze(TaskEnv):
    """T-Maze (Bakker 2001; the AGaLiTe paper's memory task).

    The agent starts at position 0 of a corridor; the junction is at position `corridor_length`.
    Observation float32[4] = [cue_left, cue_right, in_corridor, at_junction]. The cue (left or right, uniformly
    random) is shown only in the first observation of an episode; afterwards the cue entries are 0, so at the
    junction only the memory of the first observation tells the agent which way to turn.
    Actions: 0 forward (one step toward the junction; a no-op at the junction), 1 turn left, 2 turn right
    (no-ops in the corridor). Turning at the junction ends the episode (terminated): reward `correct_reward`
    (+1) and success 1 if the turn matches the cue, else `wrong_reward` (-1) and success 0. Every other step
    (one that does not end with a turn at the junction) gives `step_reward` (default 0; e.g. -0.01 as a small
    per-step cost, finite and <= 0), so an episode that turns after n earlier steps returns
    turn_reward + n * step_reward. An episode that has not turned after `max_steps` steps is truncated
    (success 0). The shortest episode takes corridor_length + 1 steps; a memoryless policy's expected success is
    at most 0.5 (its junction choice cannot depend on the cue) and its expected return at most
    corridor_length * step_reward with the default turn rewards.
    """

    corridor_length: int = 4
    max_steps: int = 0  # 0 means 4 * (corridor_length + 1)
    correct_reward: float = 1.0
    wrong_reward: float = -1.0
    step_reward: float = 0.0
    name: str = "tmaze"
    obs_dim: int = dataclasses.field(default=4, init=False)
    num_actions: int = dataclasses.field(default=3, init=False)

    def __post_init__(self):
        _check(
            isinstance(self.corridor_length, int) and self.corridor_length >= 1,
            f"tmaze corridor_length must be an int >= 1, got {self.corridor_length!r}",
        )
        _check(
            isinstance(self.step_reward, (int, float)) and math.isfinite(self.step_reward) and self.step_reward <= 0,
            f"tmaze step_reward must be a finite number <= 0 (a per-step cost), got {self.step_reward!r}",
        )
        if self.max_steps == 0:
            object.__setattr__(self, "max_steps", 4 * (self.corridor_length + 1))
        _check(
            self.max_steps >= self.corridor_length + 1,
            f"tmaze max_steps={self.max_steps} is shorter than the shortest episode (corridor_length + 1 = "
            f"{self.corridor_length + 1}); raise max_steps or pass 0 for the default",
        )

    def _observe(self, pos: jax.Array) -> jax.Array:
        """Observation with no cue at corridor position `pos`."""
        at_junction = pos >= self.corridor_length
        return jnp.stack([0.0, 0.0, ~at_junction, at_junction]).astype(jnp.float32)

    def init_episode(self, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Draw the cue (0 left, 1 right) and place the agent at position 0; the first obs shows the cue."""
        cue = jax.random.bernoulli(key).astype(jnp.int32)
        pos = jnp.zeros((), jnp.int32)
        obs = self._observe(pos).at[cue].set(1.0)
        return obs, {"cue": cue, "pos": pos}

    def transition(self, key, inner, time, action):
        """Move forward or turn; a turn at the junction ends the episode with the cue deciding the reward, any other
        step gives step_reward."""
        del key, time
        at_junction = inner["pos"] >= self.corridor_length
        pos = jnp.where(action == FORWARD, jnp.minimum(inner["pos"] + 1, self.corridor_length), inner["pos"])
        turned = at_junction & ((action == LEFT) | (action == RIGHT))
        correct = turned & (action - LEFT == inner["cue"])
        reward = jnp.where(turned, jnp.where(correct, self.correct_reward, self.wrong_reward), self.step_reward)
        return self._observe(pos), {"cue": inner["cue"], "pos": pos}, reward, turned, correct


def _num_needed(fraction: float, total: int) -> int:
    """The smallest count c with c / total >= fraction (exact, no float round-off at the boundary)."""
    return min(total, max(0, math.ceil(fraction * total - 1e-9)))


@dataclasses.dataclass(frozen=True)
class RepeatPrevious(TaskEnv):
    """Repeat the symbol seen k steps ago (POPGym "RepeatPrevious"; symbols drawn i.i.d., not from a deck).

    Each step shows one of `num_symbols` symbols: obs float32[num_symbols] = one_hot(symbol_t). The action at step
    t (t = 0, 1, ...) must equal symbol_{t-k}. Steps t < k are not scored (reward 0). Scored steps give
    +1 / (episode_length - k) if correct, -1 / (episode_length - k) if wrong, so the return lies in [-1, 1].
    The episode terminates after `episode_length` steps (max_steps = episode_length; never truncated).
    Success: at least `success_fraction` of the scored steps answered correctly.
    Difficulty knobs: k (how far back to remember), num_symbols. A memoryless policy is correct with probability
    1 / num_symbols per scored step (symbol_{t-k} is independent of what it sees), expected return
    2 / num_symbols - 1.
    State: the last k + 1 symbols (newest first) and the number of correct answers.
    """

    k: int = 4
    num_symbols: int = 4
    episode_length: int = 16
    success_fraction: float = 0.9
    name: str = "repeat_previous"

    def __post_init__(self):
        _check(isinstance(self.k, int) and self.k >= 1, f"repeat_previous k must be an int >= 1, got {self.k!r}")
        _check(self.num_symbols >= 2, f"repeat_previous num_symbols must be >= 2, got {self.num_symbols}")
        _check(
            self.episode_length > self.k,
            f"repeat_previous episode_length={self.episode_length} must exceed k={self.k} (no step would be scored)",
        )
        _check(0.0 < self.success_fraction <= 1.0, f"success_fraction must be in (0, 1], got {self.success_fraction}")

    @property
    def obs_dim(self) -> int:
        return self.num_symbols

    @property
    def num_actions(self) -> int:
        return self.num_symbols

    @property
    def max_steps(self) -> int:
        return self.episode_length

    def _draw(self, key: jax.Array) -> jax.Array:
        """One uniformly random symbol, int32[]."""
        return jax.random.randint(key, (), 0, self.num_symbols, jnp.int32)

    def init_episode(self, key):
        """Draw symbol_0 and show it; the history before it is filled with zeros (never scored)."""
        symbol = self._draw(key)
        history = jnp.zeros((self.k + 1,), jnp.int32).at[0].set(symbol)
        inner = {"history": history, "num_correct": jnp.zeros((), jnp.int32)}
        return jax.nn.one_hot(symbol, self.num_symbols, dtype=jnp.float32), inner

    def transition(self, key, inner, time, action):
        """Score the action against symbol_{time-k} = history[k], then draw and show symbol_{time+1}."""
        scored = time >= self.k
        correct = scored & (action == inner["history"][self.k])
        scale = 1.0 / (self.episode_length - self.k)
        reward = jnp.where(scored, jnp.where(correct, scale, -scale), 0.0)
        num_correct = inner["num_correct"] + correct.astype(jnp.int32)
        terminated = time + 1 >= self.episode_length
        success = num_correct >= _num_needed(self.success_fraction, self.episode_length - self.k)
        symbol = self._draw(key)
        history = jnp.concatenate([symbol[None], inner["history"][: self.k]])
        obs = jax.nn.one_hot(symbol, self.num_symbols, dtype=jnp.float32)
        return obs, {"history": history, "num_correct": num_correct}, reward, terminated, success


@dataclasses.dataclass(frozen=True)
class CountRecall(TaskEnv):
    """Keep running counts of dealt values (POPGym "CountRecall"-style; values drawn i.i.d., not from a deck).

    Each step t deals a value v_t and asks a query value q_t (both uniform over `num_values`):
    obs float32[2 * num_values] = [one_hot(v_t) | one_hot(q_t)]. The action at step t must be the number of
    times q_t has been dealt so far, #{s <= t : v_s == q_t}, clipped to `max_count` (actions 0 .. max_count).
    Each step gives +1 / episode_length if correct, else -1 / episode_length (return in [-1, 1]). The episode
    terminates after `episode_length` steps (never truncated). Success: at least `success_fraction` of the steps
    answered correctly. Difficulty knobs: episode_length (how long counts must be kept), num_values.
    A memoryless policy sees only (v_t, q_t), not the history, so it cannot track the counts.
    State: counts int32[num_values] of the values dealt so far (v_t included), q_t, the number of correct answers.
    """

    num_values: int = 4
    episode_length: int = 16
    max_count: int = 0  # 0 means episode_length (no clipping)
    success_fraction: float = 0.9
    name: str = "count_recall"

    def __post_init__(self):
        _check(self.num_values >= 2, f"count_recall num_values must be >= 2, got {self.num_values}")
        _check(self.episode_length >= 1, f"count_recall episode_length must be >= 1, got {self.episode_length}")
        if self.max_count == 0:
            object.__setattr__(self, "max_count", self.episode_length)
        _check(self.max_count >= 1, f"count_recall max_count must be >= 1 (or 0 for the default), got {self.max_count}")
        _check(0.0 < self.success_fraction <= 1.0, f"success_fraction must be in (0, 1], got {self.success_fraction}")

    @property
    def obs_dim(self) -> int:
        return 2 * self.num_values

    @property
    def num_actions(self) -> int:
        return self.max_count + 1

    @property
    def max_steps(self) -> int:
        return self.episode_length

    def _deal(self, key: jax.Array, counts: jax.Array, num_correct: jax.Array):
        """Deal a value and a query; returns (obs [one_hot(v) | one_hot(q)], inner with v added to counts)."""
        value, query = jax.random.randint(key, (2,), 0, self.num_values, jnp.int32)
        dealt = jax.nn.one_hot(value, self.num_values, dtype=jnp.int32)
        obs = jnp.concatenate([dealt, jax.nn.one_hot(query, self.num_values, dtype=jnp.int32)]).astype(jnp.float32)
        return obs, {"counts": counts + dealt, "query": query, "num_correct": num_correct}

    def init_episode(self, key):
        """Deal step 0 with all counts at zero."""
        zero = jnp.zeros((), jnp.int32)
        return self._deal(key, jnp.zeros((self.num_values,), jnp.int32), zero)

    def answer(self, inner) -> jax.Array:
        """The correct action for the current step: count of the query among the values dealt, clipped."""
        return jnp.minimum(inner["counts"][inner["query"]], self.max_count)

    def transition(self, key, inner, time, action):
        """Score the count, then deal step time + 1."""
        correct = action == self.answer(inner)
        scale = 1.0 / self.episode_length
        reward = jnp.where(correct, scale, -scale)
        num_correct = inner["num_correct"] + correct.astype(jnp.int32)
        terminated = time + 1 >= self.episode_length
        success = num_correct >= _num_needed(self.success_fraction, self.episode_length)
        obs, inner = self._deal(key, inner["counts"], num_correct)
        return obs, inner, reward, terminated, success
