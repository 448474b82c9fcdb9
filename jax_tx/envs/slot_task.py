"""SlotSelect: a JAX-native entity-slot task with factored actions (action type, slot), for the slot policy.

Each step shows a board of `num_slots` slots of which a random number k in [min_active, max_active] are
active, at random positions. Active slot i has a type c_i in {0 .. C-1} and a value u_i in [0, 1); an
inactive slot is all zeros (feature 0 = active flag, as the slot policy's contract says). The episode's
query type q (uniform) is fixed for the whole episode.

    obs  = [base | slot_0 | ... | slot_{N-1}]      base = [one_hot(q) | first]   (base_dim = C + 1)
           slot_i = [active_i | one_hot(c_i) | u_i]  (slot_dim = C + 2; zeros when inactive)
    action = (a_type in 0..C-1, a_slot in 0..N-1)    (action_dims = (C, N))
    right slot   s* = argmax_i {u_i : i active, c_i = q}   (the board always holds one slot of type q)
    right type   a* = c_j,  j = argmax_i {u_i : i active}  (the type of the board's largest value)
    reward_t = (0.5 [a_slot = s*] + 0.5 [a_type = a*]) / episode_length

Both answers need comparisons across slots (the largest value within a type, the largest overall), so
attention across slots can help; positions are random, so a flat reading of the observation must learn
the same comparison at every position. The optimum is known: return 1 (every step fully right; the
answer is a function of what the agent has seen), success = return >= success_fraction.
Masks (`action_mask`): a_type may only name a type present on the board, a_slot only an active slot.

Memory version (memory=True): q is shown only in the first observation of an episode (base query zeros
afterwards, `first` = 1 only then), so the right slot at t >= 1 depends on what was shown earlier; the
right type never needs memory. A memoryless policy cannot know q at t >= 1.
Each step draws a new board; episodes terminate after episode_length steps (never truncated).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jax_tx.envs.base import EpisodeState, TaskEnv, finish_step
from jax_tx.envs.memory_tasks import _check, _num_needed


@dataclasses.dataclass(frozen=True)
class SlotSelect(TaskEnv):
    """Choose the right slot and action type from a variable set of slots (see the module docstring)."""

    num_slots: int = 10
    min_active: int = 2
    max_active: int = 0  # 0 means num_slots
    num_types: int = 3
    episode_length: int = 8
    memory: bool = False
    success_fraction: float = 0.9
    name: str = "slot_select"

    def __post_init__(self):
        _check(
            isinstance(self.num_slots, int) and self.num_slots >= 1,
            f"slot_select num_slots must be >= 1, got {self.num_slots!r}",
        )
        if self.max_active == 0:
            object.__setattr__(self, "max_active", self.num_slots)
        _check(
            1 <= self.min_active <= self.max_active <= self.num_slots,
            f"slot_select needs 1 <= min_active ({self.min_active}) <= max_active ({self.max_active}) <= num_slots "
            f"({self.num_slots}); pass max_active=0 for num_slots",
        )
        _check(self.num_types >= 2, f"slot_select num_types must be >= 2, got {self.num_types}")
        _check(self.episode_length >= 1, f"slot_select episode_length must be >= 1, got {self.episode_length}")
        _check(0.0 < self.success_fraction <= 1.0, f"success_fraction must be in (0, 1], got {self.success_fraction}")

    @property
    def base_dim(self) -> int:
        return self.num_types + 1

    @property
    def slot_dim(self) -> int:
        return self.num_types + 2

    @property
    def obs_dim(self) -> int:
        return self.base_dim + self.num_slots * self.slot_dim

    @property
    def num_actions(self) -> int:
        return self.num_types

    @property
    def action_dims(self) -> tuple[int, int]:
        return (self.num_types, self.num_slots)

    @property
    def max_steps(self) -> int:
        return self.episode_length

    def draw_board(self, key, query):
        """A random board holding at least one active slot of type `query`: {active [N], types [N], u [N]}."""
        k_n, k_pos, k_type, k_u, k_pick = jax.random.split(key, 5)
        n = self.num_slots
        k = jax.random.randint(k_n, (), self.min_active, self.max_active + 1)
        active = jax.random.permutation(k_pos, n) < k
        types = jax.random.randint(k_type, (n,), 0, self.num_types)
        pick = jnp.argmax(jnp.where(active, jax.random.uniform(k_pick, (n,)), -1.0))
        types = types.at[pick].set(query)
        return {"active": active, "types": types, "u": jax.random.uniform(k_u, (n,))}

    def answer(self, inner):
        """(right type a*, right slot s*) of the current board, int32[] each."""
        active, types, u = inner["active"], inner["types"], inner["u"]
        best = jnp.argmax(jnp.where(active, u, -1.0))
        slot = jnp.argmax(jnp.where(active & (types == inner["query"]), u, -1.0))
        return types[best].astype(jnp.int32), slot.astype(jnp.int32)

    def observe(self, inner, first):
        """Flat observation of the board; the query is hidden after the first step in the memory version."""
        show = jnp.logical_or(first, not self.memory)
        query = jax.nn.one_hot(inner["query"], self.num_types) * show
        base = jnp.concatenate([query, jnp.asarray(first, jnp.float32)[None]])
        active = inner["active"].astype(jnp.float32)
        slots = jnp.concatenate(
            [active[:, None], jax.nn.one_hot(inner["types"], self.num_types), inner["u"][:, None]], axis=-1
        )
        return jnp.concatenate([base, (slots * active[:, None]).reshape(-1)]).astype(jnp.float32)

    def init_episode(self, key):
        k_q, k_board = jax.random.split(key)
        query = jax.random.randint(k_q, (), 0, self.num_types)
        inner = {"query": query, **self.draw_board(k_board, query), "points": jnp.zeros((), jnp.int32)}
        return self.observe(inner, True), inner

    def transition(self, key, inner, time, action):
        """Score (a_type, a_slot) against the current board, then draw the next board."""
        right_type, right_slot = self.answer(inner)
        points = (action[0] == right_type).astype(jnp.int32) + (action[1] == right_slot).astype(jnp.int32)
        reward = 0.5 * points.astype(jnp.float32) / self.episode_length
        total = inner["points"] + points
        terminated = time + 1 >= self.episode_length
        success = total >= _num_needed(self.success_fraction, 2 * self.episode_length)
        nxt = {"query": inner["query"], **self.draw_board(key, inner["query"]), "points": total}
        return self.observe(nxt, False), nxt, reward, terminated, success

    def action_mask(self, state: EpisodeState):
        """bool[C + N]: [types present among the active slots | active slots]."""
        inner = state.inner
        present = jnp.any(
            inner["active"][None, :] & (inner["types"][None, :] == jnp.arange(self.num_types)[:, None]), axis=1
        )
        return jnp.concatenate([present, inner["active"]])

    def step(self, key, state: EpisodeState, action):
        """One auto-resetting step; action int32[2] = (a_type, a_slot)."""
        key_step, key_reset = jax.random.split(key)
        action = jnp.asarray(action, jnp.int32).reshape((2,))
        obs, inner, reward, terminated, success = self.transition(key_step, state.inner, state.time, action)
        reset_obs, reset_inner = self.init_episode(key_reset)
        return finish_step(state, obs, inner, reward, terminated, success, reset_obs, reset_inner, self.max_steps)
