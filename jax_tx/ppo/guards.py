"""Non-finite guards: a flag computed inside the jitted iteration, read with the other metrics.

    code = nonfinite_code({"observation": obs, "reward": r, "loss": loss, "grad_norm": g, "params": p})
    code == 0            every value is finite
    code == k > 0        GUARDED[k - 1] is the first non-finite one (in GUARDED's order)

The flag travels with the metrics (no extra host sync). `keep_if(ok, new, old)` drops an update
(on_nonfinite="skip"); the Python loop stops the run on a non-zero code (on_nonfinite="stop").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

GUARDED = ("observation", "reward", "loss", "grad_norm", "params")
"""What the trainer checks each iteration, in this order: the first non-finite one names the cause."""
MODES = ("stop", "skip")


def all_finite(tree) -> jnp.ndarray:
    """bool[]: every floating leaf of `tree` is finite (integer and bool leaves always are)."""
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    if not leaves:
        return jnp.array(True)
    return jnp.stack([jnp.isfinite(x).all() for x in leaves]).all()


def nonfinite_code(named: dict, order: tuple[str, ...] = GUARDED) -> jnp.ndarray:
    """float32[]: 0 when every value is finite, else 1 + the index in `order` of the first that is not.

    `named` maps each name of `order` to a pytree (dict order is not used: jit sorts dict keys).
    """
    if set(named) != set(order):
        raise ValueError(f"nonfinite_code needs exactly the values {order}, got {sorted(named)}")
    bad = jnp.stack([~all_finite(named[k]) for k in order])
    return jnp.where(bad.any(), jnp.argmax(bad) + 1, 0).astype(jnp.float32)


def keep_if(ok: jnp.ndarray, new, old):
    """`new` where ok, else `old` (leafwise; same structure)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def describe(code: float, names: tuple[str, ...] = GUARDED) -> str:
    """The name behind a non-zero code, e.g. describe(2.0) == 'reward'."""
    k = int(code)
    return names[k - 1] if 1 <= k <= len(names) else f"code {k}"


def first_bad(codes) -> int | None:
    """Index of the first non-zero code in a [n] array of codes, or None."""
    for j, c in enumerate(codes):
        if float(c) != 0.0:
            return j
    return None
