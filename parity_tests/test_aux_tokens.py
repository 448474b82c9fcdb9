"""Auxiliary history inputs (prev_action, prev_reward): jax_tx/aux_tokens.py vs torch_ref/aux_tokens.py.

The battery runs on GTrXL with aux_tokens=True (test_trxl.py covers Transformer-XL with them); the
sliding-window core, which turns the same inputs into tokens of its own, is checked here too.
"""

import functools

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_tx
import torch_ref
from jax_tx.config import preset
from parity_tests import harness as h
from parity_tests.battery import *  # noqa: F403  (the shared parity tests, run for each `cfg`)

SMALL = dict(obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32)
CONFIGS = {"gtrxl": preset("gtrxl", **SMALL, memory_len=4, aux_tokens=True)}
USERS = {
    "gtrxl": CONFIGS["gtrxl"],
    "sliding": preset("sliding", **SMALL, max_cache_size=10),
    "sliding_aux": preset("sliding", **SMALL, max_cache_size=10, aux_tokens=True),
}


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.fixture
def other_variant_cfg():
    return preset("trxl", **SMALL, memory_len=4)


def test_sliding_with_aux_tokens_parity_and_step_mode():
    h.check_forward_parity(USERS["sliding_aux"], h.FP32_TOL, chunks=2)
    h.check_step_equals_sequence(USERS["sliding_aux"], chunks=2)


@functools.cache
def _pair(name):
    return h.build_pair(USERS[name])


def _values(name: str, **kw) -> list[np.ndarray]:
    """Value outputs of (jax, torch) on fixed obs/reset for one call from fresh memory."""
    cfg = USERS[name]
    tmodel, model, params = _pair(name)
    ch = h.make_chunks(cfg, batch=2, steps=4, chunks=1)[0]
    j_kw = {k: None if v is None else jnp.asarray(v) for k, v in kw.items()}
    t_kw = {k: None if v is None else torch.as_tensor(v) for k, v in kw.items()}
    j_out, _ = model.apply(params, jnp.asarray(ch.obs), jnp.asarray(ch.reset), jax_tx.initial_memory(cfg, 2), **j_kw)
    with torch.no_grad():
        t_out, _ = tmodel(torch.as_tensor(ch.obs), torch.as_tensor(ch.reset), torch_ref.initial_memory(cfg, 2), **t_kw)
    return [np.asarray(j_out.value), t_out.value.numpy()]


NO_ACTION = np.full((2, 4), -1)
ZERO_REWARD = np.zeros((2, 4), np.float32)
ACTIONS = np.array([[0, 2, 1, 1], [2, 0, 0, 1]])
REWARDS = np.array([[0.5, -1.0, 0.0, 2.0], [1.0, 0.0, 0.0, -0.5]], np.float32)


@pytest.mark.parametrize("name", ["gtrxl", "sliding"])
def test_absent_inputs_mean_no_action_and_zero_reward(name):
    for got, want in zip(_values(name), _values(name, prev_action=NO_ACTION, prev_reward=ZERO_REWARD), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["gtrxl", "sliding"])
def test_previous_action_and_reward_change_the_output_except_at_episode_start(name):
    """They change the output at every step but those with reset=True, where they belong to the old episode."""
    reset = h.make_chunks(USERS[name], batch=2, steps=4, chunks=1)[0].reset
    assert reset.any() and not reset.all()
    base = _values(name, prev_action=ACTIONS, prev_reward=REWARDS)
    other_action = _values(name, prev_action=(ACTIONS + 1) % 3, prev_reward=REWARDS)
    other_reward = _values(name, prev_action=ACTIONS, prev_reward=REWARDS + 1.0)
    for b, a, r in zip(base, other_action, other_reward, strict=True):
        for changed in (a, r):
            assert np.all(np.abs(changed - b)[~reset] > 1e-6)
            np.testing.assert_array_equal(changed[reset], b[reset])
    np.testing.assert_allclose(base[0], base[1], rtol=0, atol=h.FP32_TOL)


@pytest.mark.parametrize("name", ["gtrxl", "sliding"])
@pytest.mark.parametrize(
    "kw, error, match",
    [
        (dict(prev_action=np.zeros((2, 5), np.int64)), ValueError, r"prev_action has shape \(2, 5\)"),
        (dict(prev_reward=np.zeros((2,), np.float32)), ValueError, r"prev_reward has shape \(2,\)"),
        (dict(prev_action=np.full((2, 4), 3)), ValueError, r"prev_action holds values in \[3, 3\]"),
        (dict(prev_action=np.full((2, 4), -2)), ValueError, r"num_actions=3\) or -1"),
        (dict(prev_action=np.zeros((2, 4), np.float32)), TypeError, "pass integer action indices"),
    ],
)
def test_bad_history_inputs_raise(name, kw, error, match):
    cfg = USERS[name]
    tmodel, model, params = _pair(name)
    obs, reset = np.zeros((2, 4, cfg.obs_dim), np.float32), np.zeros((2, 4), bool)
    with pytest.raises(error, match=match):
        model.apply(params, obs, reset, jax_tx.initial_memory(cfg, 2), **{k: jnp.asarray(v) for k, v in kw.items()})
    with pytest.raises(error, match=match):
        tmodel(
            torch.as_tensor(obs),
            torch.as_tensor(reset),
            torch_ref.initial_memory(cfg, 2),
            **{k: torch.as_tensor(v) for k, v in kw.items()},
        )
