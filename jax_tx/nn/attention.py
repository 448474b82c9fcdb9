"""Episode masks: which keys a query may attend to.

Episode ids are a cumulative sum of resets (flax lm1b builds masks from segment ids
the same way). A memory slot carries a validity flag: valid slots belong to the
episode in progress when the call starts (id 0), empty or stale ones get id -1 and
are never attended.

    keys:     [ m_0 ... m_{M-1} | x_0 ... x_{T-1} ]
    key id:   [ 0 or -1 ...     | cumsum(reset)   ]
    query t sees key k  iff  id(k) == id(t)  and  0 <= dist(t, k) <= window
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def episode_ids(reset: jnp.ndarray) -> jnp.ndarray:
    """ids[b, t] = sum_{s <= t} reset[b, s]  ([B, T] int32)."""
    return jnp.cumsum(reset.astype(jnp.int32), axis=1)


def memory_key_ids(mem_valid: jnp.ndarray, reset: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Episode ids of all keys [B, M+T] and of the queries [B, T]."""
    query_ids = episode_ids(reset)
    mem_ids = jnp.where(mem_valid, 0, -1).astype(jnp.int32)
    return jnp.concatenate([mem_ids, query_ids], axis=1), query_ids


def memory_attention_mask(mem_valid: jnp.ndarray, reset: jnp.ndarray, window: int | None) -> jnp.ndarray:
    """allowed[b, t, k] for queries x_t against keys [memory | x] ([B, T, M+T] bool).

    Args:
      mem_valid: [B, M] bool, the memory slots that hold the current episode.
      reset: [B, T] bool, reset[b, t] starts an episode at step t.
      window: largest visible distance (memory_len for same_length); None = unbounded.
    """
    num_mem, steps = mem_valid.shape[1], reset.shape[1]
    key_ids, query_ids = memory_key_ids(mem_valid, reset)
    dist = (num_mem + jnp.arange(steps))[:, None] - jnp.arange(num_mem + steps)[None, :]  # [T, K]
    visible = dist >= 0
    if window is not None:
        visible = visible & (dist <= window)
    return (query_ids[:, :, None] == key_ids[:, None, :]) & visible[None]


def roll_memory(mem_valid: jnp.ndarray, reset: jnp.ndarray) -> jnp.ndarray:
    """Validity of the next memory: the last M keys that share the final episode ([B, M])."""
    num_mem = mem_valid.shape[1]
    key_ids, query_ids = memory_key_ids(mem_valid, reset)
    return key_ids[:, -num_mem:] == query_ids[:, -1:]


def masked_softmax(scores: jnp.ndarray, allowed: jnp.ndarray) -> jnp.ndarray:
    """softmax over the last axis of scores where allowed, in float32 (or float64).

    Masked entries get the most negative finite value; a query always sees itself,
    so no row is fully masked.
    """
    work = jnp.promote_types(scores.dtype, jnp.float32)
    s = scores.astype(work)
    s = jnp.where(allowed, s, jnp.finfo(work).min)
    return jax.nn.softmax(s, axis=-1).astype(scores.dtype)
