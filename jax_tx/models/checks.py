"""Input checks shared by both twins (no jax or torch import: they read shapes only).

Each check raises ValueError naming the argument, the expected shape and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from jax_tx.config import TOKEN_PAD, PolicyConfig


def check_policy_inputs(
    cfg: PolicyConfig,
    obs_shape: Sequence[int],
    reset_shape: Sequence[int],
    memory_batch_sizes: Sequence[int],
    prev_action_shape: Sequence[int] | None = None,
    prev_reward_shape: Sequence[int] | None = None,
    obs_dtype: str | None = None,
) -> None:
    obs_shape, reset_shape = tuple(obs_shape), tuple(reset_shape)
    if cfg.encoder == "tokens":
        check_token_shape(cfg, obs_shape, obs_dtype)
    elif len(obs_shape) != 3 or (cfg.variant != "slot" and obs_shape[2] != cfg.obs_dim):
        raise ValueError(
            f"obs has shape {obs_shape}; expected [B, T, obs_dim={cfg.obs_dim}] for variant {cfg.variant!r} "
            f"(for one step pass T=1, e.g. obs[:, None])"
        )
    if reset_shape != obs_shape[:2]:
        raise ValueError(
            f"reset has shape {reset_shape}; expected [B, T] = {obs_shape[:2]} matching obs "
            f"(reset[b, t] True where an episode starts at step t)"
        )
    batch = obs_shape[0]
    bad = sorted({int(n) for n in memory_batch_sizes if int(n) != batch})
    if bad:
        raise ValueError(
            f"memory has batch size(s) {bad} but obs has batch {batch}; "
            f"build it with initial_memory(cfg, {batch}) or carry the memory of the same batch"
        )
    for name, shape in (("prev_action", prev_action_shape), ("prev_reward", prev_reward_shape)):
        if shape is not None and tuple(shape) != obs_shape[:2]:
            raise ValueError(f"{name} has shape {tuple(shape)}; expected [B, T] = {obs_shape[:2]} matching obs")


def check_token_shape(cfg: PolicyConfig, obs_shape: tuple, obs_dtype: str | None) -> None:
    """Token observations are uint8 [B, T, obs_dim, 3] (encoder='tokens')."""
    if len(obs_shape) != 4 or obs_shape[2] != cfg.obs_dim or obs_shape[3] != 3:
        raise ValueError(
            f"obs has shape {obs_shape}; expected token observations [B, T, obs_dim={cfg.obs_dim}, 3] "
            f"(encoder='tokens': obs_dim tokens per step, bytes coordinate / attribute / value; for one step "
            f"pass T=1, e.g. obs[:, None])"
        )
    if obs_dtype is not None and obs_dtype.removeprefix("torch.") != "uint8":
        raise ValueError(
            f"obs has dtype {obs_dtype}; expected uint8 token observations (encoder='tokens'); pass the raw "
            f"token bytes, e.g. obs.astype(np.uint8), not normalised floats"
        )


def check_token_values(cfg: PolicyConfig, obs) -> None:
    """Concrete token bytes (numpy uint8 [..., 3]): coordinates inside the grid, attribute ids inside the table."""
    import numpy as np

    coord, attr = np.asarray(obs[..., 0]), np.asarray(obs[..., 1])
    valid = coord != TOKEN_PAD
    x, y = coord >> 4, coord & 15
    grid, vocab = cfg.token_grid_size, cfg.token_attr_vocab
    bad = valid & ((x >= grid) | (y >= grid))
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"token obs{list(at)} has coordinate x={int(x[at])}, y={int(y[at])} (byte 0x{int(coord[at]):02X}); "
            f"expected x, y < token_grid_size={grid} (x = high nibble, y = low nibble), or byte 0xFF for padding"
        )
    bad = valid & (attr >= vocab)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"token obs{list(at)} has attribute id {int(attr[at])}; expected an id < token_attr_vocab={vocab} "
            f"(raise token_attr_vocab or remap the ids)"
        )


def check_memory_keys(variant: str, expected: Sequence[str], got: Sequence[str]) -> None:
    if sorted(expected) != sorted(got):
        raise ValueError(
            f"memory for variant {variant!r} must have keys {sorted(expected)}, got {sorted(got)}; "
            f"build it with initial_memory(cfg, batch)"
        )


def check_memory_kinds(variant: str, expected: dict[str, str], got: dict[str, str]) -> None:
    """Each memory leaf must have the kind ("float", "int", "bool") of the leaf initial_memory builds.

    `expected` / `got` map a leaf's path to its kind; an int32 memory would otherwise come back as int32.
    """
    bad = sorted(k for k in expected if k in got and got[k] != expected[k])
    if bad:
        k = bad[0]
        raise ValueError(
            f"memory leaf {k} of variant {variant!r} is {got[k]} but must be {expected[k]}; "
            f"build the memory with initial_memory(cfg, batch) or carry the memory the policy returned"
        )
