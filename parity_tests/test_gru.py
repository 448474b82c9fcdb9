"""GRU baseline twins: jax_tx/models/gru.py vs torch_ref/models/gru.py (battery in battery.py), and both
GRU layers against torch's own nn.GRU (which pins the gate order r, z, n and the place of b_hn)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_tx
import torch_ref
from jax_tx.config import preset
from jax_tx.io import convert
from jax_tx.models.policy import example_inputs
from jax_tx.nn.gru import GRU as JaxGRU
from parity_tests import harness as h
from parity_tests.battery import *  # noqa: F403  (the shared parity tests, run for each `cfg`)
from torch_ref.nn.gru import GRU as TorchGRU

SMALL = dict(obs_dim=6, num_actions=3, d_model=16)
CONFIGS = {
    # two layers of width 12 != d_model: exercises the stacked layers and the output projection
    "stacked": preset("gru", **SMALL, num_layers=2, lstm_hidden=12),
}


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.fixture
def other_variant_cfg():
    return preset("sliding", **SMALL, num_heads=2, max_cache_size=8)


def test_single_layer_of_model_width_has_no_projection():
    cfg = preset("gru", **SMALL, num_layers=1)
    tmodel = torch_ref.make_policy(cfg)
    assert not hasattr(tmodel.core, "out_proj")
    state = tmodel.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if k.startswith("core.")} == {
        "core.layers.0.bias_hh_l0": (48,),
        "core.layers.0.bias_ih_l0": (48,),
        "core.layers.0.weight_hh_l0": (48, 16),
        "core.layers.0.weight_ih_l0": (48, 16),
    }
    assert tuple(jax_tx.initial_memory(cfg, 5)["h"].shape) == (5, 1, 16)
    h.check_forward_parity(cfg, h.FP32_TOL, chunks=2)


def test_init_biases_zero_weights_uniform_in_both_twins():
    """Biases 0; weights inside torch's nn.GRU bound 1/sqrt(W) and not all zero."""
    cfg = CONFIGS["stacked"]
    params = jax_tx.make_policy(cfg).init(jax.random.PRNGKey(0), *example_inputs(cfg))["params"]
    state = torch_ref.make_policy(cfg).state_dict()
    bound = 12**-0.5
    for i in range(2):
        jp = {k: np.asarray(v) for k, v in params["core"][f"layers_{i}"].items()}
        tp = {k.rsplit(".", 1)[1]: v.numpy() for k, v in state.items() if k.startswith(f"core.layers.{i}.")}
        for p in (jp, tp):
            np.testing.assert_array_equal(p["bias_ih_l0"], np.zeros(36))
            np.testing.assert_array_equal(p["bias_hh_l0"], np.zeros(36))
            for w in ("weight_ih_l0", "weight_hh_l0"):
                assert np.all(np.abs(p[w]) <= bound) and np.std(p[w]) > bound / 4, w


def _torch_gru_case(seed: int = 0):
    """A float64 nn.GRU with random biases, inputs x [2, 7, 5], h0 [2, 4], reset at t=3 in row 0 only."""
    torch.manual_seed(seed)
    ref = torch.nn.GRU(5, 4, batch_first=True).double()
    with torch.no_grad():
        ref.bias_ih_l0.uniform_(-0.5, 0.5)
        ref.bias_hh_l0.uniform_(-0.5, 0.5)
    x = torch.randn(2, 7, 5, dtype=torch.float64)
    h0 = torch.randn(2, 4, dtype=torch.float64)
    reset = torch.zeros(2, 7, dtype=torch.bool)
    reset[0, 3] = True
    return ref, x, h0, reset


def _nn_gru_with_reset(ref, x, h0):
    """The expected outputs from plain nn.GRU calls: row 0 restarts from h = 0 at t=3, row 1 never resets."""
    with torch.no_grad():
        y0a, _ = ref(x[0:1, :3], h0[None, 0:1])
        y0b, h0_end = ref(x[0:1, 3:], torch.zeros(1, 1, 4, dtype=x.dtype))
        y1, h1_end = ref(x[1:2], h0[None, 1:2])
    y = torch.cat([torch.cat([y0a, y0b], dim=1), y1], dim=0)
    return y.numpy(), torch.cat([h0_end[0], h1_end[0]], dim=0).numpy()


def test_both_layers_equal_torch_nn_gru_with_resets():
    """jax_tx.nn.gru.GRU and torch_ref.nn.gru.GRU on nn.GRU's own weights == nn.GRU run per segment (float64)."""
    ref, x, h0, reset = _torch_gru_case()
    want_y, want_h = _nn_gru_with_reset(ref, x, h0)
    cfg = preset("gru", obs_dim=5, num_actions=2, d_model=8, lstm_hidden=4, dtype="float64")

    twin = TorchGRU(cfg, 5, 4).double()
    twin.load_state_dict(ref.state_dict())
    with torch.no_grad():
        ty, tstate = twin(x, reset, {"h": h0})
    np.testing.assert_allclose(ty.numpy(), want_y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tstate["h"].numpy(), want_h, rtol=0, atol=1e-12)

    with jax.enable_x64(True):
        params = {"params": {k: jnp.asarray(v.numpy()) for k, v in ref.state_dict().items()}}
        jy, jstate = JaxGRU(cfg, 4).apply(params, jnp.asarray(x.numpy()), jnp.asarray(reset.numpy()), {"h": h0.numpy()})
        np.testing.assert_allclose(np.asarray(jy), want_y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(jstate["h"]), want_h, rtol=0, atol=1e-12)
    # without the reset, row 0 from t=3 on differs: the test would see a missing reset
    with torch.no_grad():
        no_reset, _ = ref(x[0:1], h0[None, 0:1])
    assert np.max(np.abs(no_reset.numpy()[0, 3:] - want_y[0, 3:])) > 1e-3


def test_lstm_weights_under_a_gru_config_name_the_shape_mismatch():
    """An LSTM checkpoint has the GRU's key names but 4W rows: conversion names the shape, not a silent copy."""
    lstm, gru = (preset(v, **SMALL, num_layers=1) for v in ("lstm", "gru"))
    torch.manual_seed(0)
    state = torch_ref.make_policy(lstm).state_dict()
    with pytest.raises(
        convert.ConversionError,
        match=r"shape mismatch at 'core\.layers\.0\..*\(48,\).*\(64,\).*"
        r"look like LSTM weights \(4W rows\): convert with variant 'lstm'",
    ):
        convert.torch_to_flax(state, gru)
    torch.manual_seed(0)
    state = torch_ref.make_policy(gru).state_dict()
    with pytest.raises(convert.ConversionError, match=r"look like GRU weights \(3W rows\): convert with variant 'gru'"):
        convert.torch_to_flax(state, lstm)


def test_update_bias_field_survives_conversion_and_keeps_parity():
    """gru_update_bias=2: the converted flax params carry torch's z block 2 (weights copied) and the twins
    agree within FP32_TOL."""
    cfg = CONFIGS["stacked"].replace(gru_update_bias=2.0)
    _, _, params = h.build_pair(cfg)
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(params["params"]["core"][f"layers_{i}"]["bias_ih_l0"])[12:24], 2.0)
    h.check_forward_parity(cfg, h.FP32_TOL, chunks=2)
