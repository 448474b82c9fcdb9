"""Transformer-XL (pre-norm) twins: jax_tx/trxl.py vs torch_ref/trxl.py."""

import pytest

from jax_tx.config import preset
from parity_tests import harness as h

SMALL = dict(obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32, memory_len=4)
CONFIGS = {
    "default": preset("trxl", **SMALL),
    "clamp_len": preset("trxl", **SMALL, clamp_len=3),
    "post_norm": preset("trxl", **SMALL, pre_norm=False),
    "aux_tokens": preset("trxl", **SMALL, aux_tokens=True),
}
NAMES = list(CONFIGS)


@pytest.mark.parametrize("name", NAMES)
def test_forward_parity_fp32(name):
    h.check_forward_parity(CONFIGS[name], h.FP32_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_forward_parity_fp64(name):
    h.check_forward_parity(CONFIGS[name].replace(dtype="float64"), h.FP64_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_parity_fp64(name):
    h.check_gradient_parity(CONFIGS[name].replace(dtype="float64"))


@pytest.mark.parametrize("name", NAMES)
def test_step_equals_sequence(name):
    h.check_step_equals_sequence(CONFIGS[name])


@pytest.mark.parametrize("name", NAMES)
def test_reset_equals_fresh_memory(name):
    h.check_reset_equals_fresh(CONFIGS[name])


@pytest.mark.parametrize("name", NAMES)
def test_round_trips_bit_exact(name):
    h.check_round_trips(CONFIGS[name])


def test_jit_matches_eager_without_retracing():
    h.check_jit_matches_and_no_retrace(CONFIGS["default"])


def test_bad_inputs_raise_clear_errors():
    h.check_bad_inputs(CONFIGS["default"], preset("gtrxl", **SMALL))


def test_full_context_differs_from_step_mode():
    """same_length=False lets segment queries see beyond the memory window (documented)."""
    cfg = CONFIGS["default"].replace(same_length=False)
    h.check_forward_parity(cfg, h.FP32_TOL)
    with pytest.raises(AssertionError, match="sequence vs step"):
        h.check_step_equals_sequence(cfg, steps=8)
