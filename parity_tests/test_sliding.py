"""Sliding-window transformer twins: jax_tx/sliding.py vs torch_ref/sliding.py (battery in battery.py).

C = max_cache_size = 10 tokens (2.5 steps) so the window slides inside every 6-step chunk and
cuts through a step's tokens.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_tx
import torch_ref
from jax_tx.config import preset
from jax_tx.models import sliding
from parity_tests import harness as h
from parity_tests.battery import *  # noqa: F403  (the shared parity tests, run for each `cfg`)
from torch_ref.models import sliding as tsliding

SMALL = dict(obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32, max_cache_size=10)
CONFIGS = {
    "mean": preset("sliding", **SMALL),
    "none": preset("sliding", **{**SMALL, "num_heads": 1}, pooling="none"),
}


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.fixture
def other_variant_cfg():
    return preset("lstm", obs_dim=6, num_actions=3, d_model=16)


def test_cls_pooling_parity_and_step_mode():
    cfg = preset("sliding", **SMALL, pooling="cls")
    h.check_forward_parity(cfg, h.FP32_TOL, chunks=2)
    h.check_step_equals_sequence(cfg, chunks=2)


def test_no_positions_parity_and_step_mode():
    """sliding_positions none: twins agree, step == sequence, and the output differs from the sinusoid model's
    (same params), so the option is live."""
    cfg = CONFIGS["mean"].replace(sliding_positions="none")
    h.check_forward_parity(cfg, h.FP32_TOL, chunks=2)
    h.check_step_equals_sequence(cfg, chunks=2)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2, 6, 6)).astype(np.float32)
    reset = np.zeros((2, 6), bool)
    _, model, params = h.build_pair(cfg)
    with_pe = _values(jax_tx.make_policy(CONFIGS["mean"]), params, CONFIGS["mean"], obs, reset)
    without = _values(model, params, cfg, obs, reset)
    assert np.abs(with_pe - without).max() > 1e-3


def test_cache_across_resets_is_metta_behaviour():
    """cache_across_resets: twins agree, step == sequence, but a reset no longer equals fresh memory."""
    cfg = CONFIGS["mean"].replace(cache_across_resets=True)
    h.check_forward_parity(cfg, h.FP32_TOL, chunks=2)
    h.check_step_equals_sequence(cfg, chunks=2)
    with pytest.raises(AssertionError):
        h.check_reset_equals_fresh(cfg)


def _values(model, params, cfg, obs, reset):
    out, _ = model.apply(params, jnp.asarray(obs), jnp.asarray(reset), jax_tx.initial_memory(cfg, obs.shape[0]))
    return np.asarray(out.value)


def test_window_and_episode_mask_bound_what_a_step_sees():
    """C = 8 tokens = 2 steps, 2 layers: step t sees steps t-2..t per layer, so obs_0 reaches steps 0..4 only;
    a reset at step 3 cuts it off after step 2."""
    cfg = preset("sliding", **{**SMALL, "max_cache_size": 8})
    tmodel, model, params = h.build_pair(cfg)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2, 8, 6)).astype(np.float32)
    reset = np.zeros((2, 8), bool)
    reset[:, 0] = True
    reset[1, 3] = True
    bumped = obs.copy()
    bumped[:, 0] += 1.0
    for run in (
        lambda o: _values(model, params, cfg, o, reset),
        lambda o: (
            tmodel(torch.as_tensor(o), torch.as_tensor(reset), torch_ref.initial_memory(cfg, 2))[0]
            .value.detach()
            .numpy()
        ),
    ):
        delta = np.abs(run(bumped) - run(obs))
        assert np.all(delta[0, :5] > 1e-5) and np.all(delta[1, :3] > 1e-5), delta
        np.testing.assert_array_equal(delta[0, 5:], 0.0)
        np.testing.assert_array_equal(delta[1, 3:], 0.0)


def test_positions_count_from_episode_start():
    reset = np.array([[False, False, True, False, False], [True, False, False, False, True]])
    start = np.array([7, 3])
    want = np.array([[7, 8, 0, 1, 2], [0, 1, 2, 3, 0]])
    np.testing.assert_array_equal(np.asarray(sliding.step_positions(jnp.asarray(reset), jnp.asarray(start))), want)
    np.testing.assert_array_equal(tsliding.step_positions(torch.as_tensor(reset), torch.as_tensor(start)).numpy(), want)
    pe = np.asarray(sliding.sinusoid_positions(jnp.asarray([3.0]), 6, jnp.float32))[0]
    freqs = 1.0 / 10000.0 ** (np.arange(0, 6, 2) / 6)
    np.testing.assert_allclose(pe, np.stack([np.sin(3 * freqs), np.cos(3 * freqs)], -1).reshape(-1), atol=1e-6)


def test_position_memory_carries_over_calls():
    cfg = CONFIGS["mean"]
    tmodel, model, params = h.build_pair(cfg)
    chunks = h.make_chunks(cfg, chunks=2)
    _, j_mem = h.run_jax(model, params, cfg, chunks)
    _, t_mem = h.run_torch(tmodel, cfg, chunks)
    reset = np.concatenate([c.reset for c in chunks], axis=1)
    last = np.array([np.flatnonzero(r).max() for r in reset])
    want = reset.shape[1] - last
    np.testing.assert_array_equal(np.asarray(j_mem["position"]), want)
    np.testing.assert_array_equal(t_mem["position"].numpy(), want)
