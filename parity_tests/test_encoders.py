"""The token-observation encoder in both twins: padding changes nothing, masks matter, bad input is named.

The Perceiver's parameters do not depend on the number of tokens, so the same weights run observations with
and without extra padding tokens (configs that differ only in obs_dim).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_tx
import torch_ref
from jax_tx.config import preset
from jax_tx.io import convert
from jax_tx.io.verify import random_tokens
from jax_tx.models.encoders import tokens as jax_tokens
from torch_ref.models.encoders import tokens as torch_tokens

SMALL = dict(
    num_actions=3,
    d_model=16,
    num_layers=1,
    num_heads=2,
    d_ff=32,
    memory_len=4,
    encoder="tokens",
    token_num_latents=3,
    token_num_heads=2,
    token_num_layers=2,
    token_attr_vocab=256,
    token_value_norms=(1.0, 255.0, 2.0),
)
N = 5


def _pair(cfg):
    torch.manual_seed(0)
    tmodel = torch_ref.make_policy(cfg)
    return tmodel, jax_tx.make_policy(cfg), convert.torch_to_flax(tmodel.state_dict(), cfg)


def _outputs(cfg, tmodel, model, params, obs, reset):
    """(jax logits, jax value, torch logits, torch value) as numpy, fresh memory."""
    out, _ = model.apply(params, jnp.asarray(obs), jnp.asarray(reset), jax_tx.initial_memory(cfg, obs.shape[0]))
    with torch.no_grad():
        tout, _ = tmodel(torch.as_tensor(obs), torch.as_tensor(reset), torch_ref.initial_memory(cfg, obs.shape[0]))
    return [np.asarray(out.logits), np.asarray(out.value), tout.logits.numpy(), tout.value.numpy()]


def _with_padding(obs: np.ndarray, rng) -> np.ndarray:
    """Insert one padding token (three 0xFF bytes) at a random position of every step."""
    b, t, n, _ = obs.shape
    out = np.full((b, t, n + 1, 3), 0xFF, np.uint8)
    for i in range(b):
        for j in range(t):
            at = rng.integers(0, n + 1)
            out[i, j, :at], out[i, j, at + 1 :] = obs[i, j, :at], obs[i, j, at:]
    return out


def _padding_is_invisible(variant: str) -> bool:
    cfg = preset(variant, obs_dim=N, **SMALL)
    wide = cfg.replace(obs_dim=N + 1)
    tmodel, model, params = _pair(cfg)
    twide = torch_ref.make_policy(wide)
    twide.load_state_dict(tmodel.state_dict())
    rng = np.random.default_rng(0)
    obs = random_tokens(cfg, rng, 2, 4)
    reset = np.zeros((2, 4), bool)
    reset[:, 0] = True
    narrow_out = _outputs(cfg, tmodel, model, params, obs, reset)
    wide_out = _outputs(wide, twide, jax_tx.make_policy(wide), params, _with_padding(obs, rng), reset)
    return all(np.array_equal(a, b) for a, b in zip(narrow_out, wide_out, strict=True))


def test_padding_token_anywhere_is_bit_identical():
    """(The encoder's output does not depend on the core; the mlp core keeps the test cheap.)"""
    assert _padding_is_invisible("mlp")


def test_padding_test_fails_with_the_mask_removed(monkeypatch):
    """Counter-test: without the padding mask the inserted token is attended and the outputs move."""
    monkeypatch.setattr(jax_tokens, "token_valid", lambda obs: jnp.ones(obs.shape[:-1], bool))
    monkeypatch.setattr(torch_tokens, "token_valid", lambda obs: torch.ones(obs.shape[:-1], dtype=torch.bool))
    assert not _padding_is_invisible("mlp")


def test_all_padding_step_is_finite_and_twins_agree():
    cfg = preset("mlp", obs_dim=N, **SMALL)
    tmodel, model, params = _pair(cfg)
    obs = np.full((2, 3, N, 3), 0xFF, np.uint8)
    obs[1, 2] = random_tokens(cfg, np.random.default_rng(1), 1, 1, padding=0.0)[0, 0]
    jl, jv, tl, tv = _outputs(cfg, tmodel, model, params, obs, np.ones((2, 3), bool))
    assert np.isfinite(jl).all() and np.isfinite(jv).all() and np.isfinite(tl).all()
    np.testing.assert_allclose(jl, tl, rtol=0, atol=1e-5)
    np.testing.assert_allclose(jv, tv, rtol=0, atol=1e-5)
    assert not np.allclose(jl[1, 2], jl[0, 0])  # the one real step differs from the empty ones


def _bad_cases(cfg):
    good = random_tokens(cfg, np.random.default_rng(2), 2, 3)
    coord = good.copy()
    coord[1, 2, 0] = [0xC3, 4, 9]  # x = 12 >= grid 11
    attr = good.copy()
    attr[0, 1, 2] = [0x21, 40, 9]  # id 40 >= vocab 32
    return [
        (good.astype(np.float32), r"obs has dtype float32; expected uint8"),
        (good[..., 0], r"obs has shape \(2, 3, 5\); expected token observations \[B, T, obs_dim=5, 3\]"),
        (np.zeros((2, 3, N, 4), np.uint8), r"obs has shape \(2, 3, 5, 4\); expected token observations"),
        (coord, r"token obs\[1, 2, 0\] has coordinate x=12, y=3 \(byte 0xC3\); expected x, y < token_grid_size=11"),
        (attr, r"token obs\[0, 1, 2\] has attribute id 40; expected an id < token_attr_vocab=32"),
    ]


def test_bad_token_observations_raise_value_errors_naming_expected_and_got():
    cfg = preset("mlp", obs_dim=N, **{**SMALL, "token_attr_vocab": 32})
    tmodel, model, params = _pair(cfg)
    reset = np.zeros((2, 3), bool)
    for obs, message in _bad_cases(cfg):
        with pytest.raises(ValueError, match=message):
            model.apply(params, jnp.asarray(obs), jnp.asarray(reset), jax_tx.initial_memory(cfg, 2))
        with pytest.raises(ValueError, match=message.replace("float32", "torch.float32")):
            tmodel(torch.as_tensor(obs), torch.as_tensor(reset), torch_ref.initial_memory(cfg, 2))
    # under jit the values are abstract: only shape and dtype can be checked, and a good batch runs
    jitted = jax.jit(model.apply)
    out, _ = jitted(params, jnp.asarray(_bad_cases(cfg)[3][0]), jnp.asarray(reset), jax_tx.initial_memory(cfg, 2))
    assert np.isfinite(np.asarray(out.logits)).all()
