"""NVIDIA Transformer-XL twins (post-norm trxl layer; the battery in battery.py)."""

import pytest

from jax_tx.config import preset
from parity_tests.battery import *  # noqa: F403  (the shared parity tests, run for each `cfg`)

SMALL = dict(obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32, memory_len=5)
CONFIGS = {
    "post_norm": preset("trxl_nvidia", **SMALL),
    "clamp_len": preset("trxl_nvidia", **SMALL, clamp_len=2),
}


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.fixture
def other_variant_cfg():
    return preset("gtrxl", **SMALL)


def test_preset_is_post_norm_with_long_memory():
    cfg = preset("trxl_nvidia", obs_dim=4, num_actions=2)
    assert (cfg.pre_norm, cfg.d_model, cfg.num_layers, cfg.memory_len, cfg.d_ff) == (False, 512, 16, 192, 2048)
