"""Transformer-XL twins: jax_tx/trxl.py vs torch_ref/trxl.py (the battery in battery.py)."""

import pytest

from jax_tx.config import preset
from parity_tests import harness as h
from parity_tests.battery import *  # noqa: F403  (the shared parity tests, run for each `cfg`)

SMALL = dict(obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32, memory_len=4)
CONFIGS = {
    "pre_norm": preset("trxl", **SMALL),
    "clamp_len": preset("trxl", **SMALL, clamp_len=3),
    "post_norm": preset("trxl", **SMALL, pre_norm=False),
    "aux_tokens": preset("trxl", **SMALL, aux_tokens=True),
}


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.fixture
def other_variant_cfg():
    return preset("gtrxl", **SMALL)


def test_full_context_differs_from_step_mode():
    """same_length=False lets segment queries see beyond the memory window (documented)."""
    full = CONFIGS["pre_norm"].replace(same_length=False)
    h.check_forward_parity(full, h.FP32_TOL)
    with pytest.raises(AssertionError, match="sequence vs step"):
        h.check_step_equals_sequence(full, steps=8)
