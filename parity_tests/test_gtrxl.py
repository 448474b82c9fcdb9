"""GTrXL twins: jax_tx/gtrxl.py vs torch_ref/gtrxl.py (the battery in battery.py)."""

import numpy as np
import pytest
import torch

import torch_ref
from jax_tx.config import preset
from parity_tests.battery import *  # noqa: F403  (the shared parity tests, run for each `cfg`)

SMALL = dict(obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32, memory_len=4)
CONFIGS = {
    "gru_gate": preset("gtrxl", **SMALL),
    "fused_gate": preset("gtrxl", **SMALL, gating="fused_gru"),
    "no_gate": preset("gtrxl", **SMALL, gating="none", sublayer_relu=False),
}


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.fixture
def other_variant_cfg():
    # trxl weights with aux projections: their keys differ from every gtrxl config above
    return preset("trxl", **SMALL, aux_tokens=True)


def test_gate_starts_near_identity():
    """b_g = 2 makes z = sigmoid(. - 2) small: the gated layer output stays close to its input."""
    from torch_ref.nn.gating import GRUGate

    torch.manual_seed(0)
    gate = GRUGate(CONFIGS["gru_gate"])
    for lin in (gate.w_z, gate.u_z):
        torch.nn.init.zeros_(lin.weight)
    x, y = torch.randn(4, 16), torch.randn(4, 16)
    z = torch.sigmoid(torch.tensor(-2.0)).item()
    out = gate(x, y)
    # with W_z = U_z = 0: g = (1 - z) x + z h, |h| <= 1
    np.testing.assert_allclose((out - (1 - z) * x).abs().max().item() <= z + 1e-6, True)
    assert torch_ref.make_policy(CONFIGS["gru_gate"]).core.layers[0].gate1.bg.detach().eq(2.0).all()
