"""LSTM baseline twins: jax_tx/lstm.py vs torch_ref/lstm.py (battery in battery.py)."""

import jax
import numpy as np
import pytest

import jax_tx
import torch_ref
from jax_tx.config import preset
from jax_tx.models.policy import example_inputs
from parity_tests import harness as h
from parity_tests.battery import *  # noqa: F403  (the shared parity tests, run for each `cfg`)

SMALL = dict(obs_dim=6, num_actions=3, d_model=16)
CONFIGS = {
    # two layers of width 12 != d_model: exercises the stacked layers and the output projection
    "stacked": preset("lstm", **SMALL, num_layers=2, lstm_hidden=12),
}


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.fixture
def other_variant_cfg():
    return preset("sliding", **SMALL, num_heads=2, max_cache_size=8)


def test_single_layer_of_model_width_has_no_projection():
    cfg = preset("lstm", **SMALL, num_layers=1)
    tmodel = torch_ref.make_policy(cfg)
    assert not hasattr(tmodel.core, "out_proj")
    assert sorted(k for k in tmodel.state_dict() if k.startswith("core.")) == [
        "core.layers.0.bias_hh_l0",
        "core.layers.0.bias_ih_l0",
        "core.layers.0.weight_hh_l0",
        "core.layers.0.weight_ih_l0",
    ]
    h.check_forward_parity(cfg, h.FP32_TOL, chunks=2)


def test_init_forget_bias_one_in_both_twins():
    """Gate order i, f, g, o: b_ih is 1 on the forget block, 0 elsewhere; b_hh is 0."""
    cfg = CONFIGS["stacked"]
    want = np.zeros(48)
    want[12:24] = 1.0
    params = jax_tx.make_policy(cfg).init(jax.random.PRNGKey(0), *example_inputs(cfg))["params"]
    state = torch_ref.make_policy(cfg).state_dict()
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(params["core"][f"layers_{i}"]["bias_ih_l0"]), want)
        np.testing.assert_array_equal(np.asarray(params["core"][f"layers_{i}"]["bias_hh_l0"]), 0.0)
        np.testing.assert_array_equal(state[f"core.layers.{i}.bias_ih_l0"].numpy(), want)
        np.testing.assert_array_equal(state[f"core.layers.{i}.bias_hh_l0"].numpy(), 0.0)


def test_forget_bias_field_survives_conversion_and_keeps_parity():
    """lstm_forget_bias=3: the converted flax params carry torch's forget block 3 (weights copied) and the twins
    agree within FP32_TOL."""
    cfg = CONFIGS["stacked"].replace(lstm_forget_bias=3.0)
    _, _, params = h.build_pair(cfg)
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(params["params"]["core"][f"layers_{i}"]["bias_ih_l0"])[12:24], 3.0)
    h.check_forward_parity(cfg, h.FP32_TOL, chunks=2)
