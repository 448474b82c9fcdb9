"""The Metta/Cortex options and the token encoder through the parity battery, on every memory core.

Each config below is a small Metta preset (or core + options) that reads token observations. To stay inside
the suite's CPU budget the tests run: fp32 forward parity on every config (every core with the token encoder),
fp64 forward on the two Cortex configs, fp64 gradients, round trips, reset == fresh on Cortex XL, step ==
sequence on Cortex AGaLiTe; `experiments/parity_metta_options.py` runs every check on every config. The two
options that break the contract by design (agalite_tick "cortex" / "official": resets do not restart the
tick; memory_holds="outputs": memory is not the layer inputs) get a counter-test that the contract check
fails. Chunks: batch 2, 2 chunks of 4 steps (resets mid-chunk).
"""

import numpy as np
import pytest

from jax_tx.config import preset
from parity_tests import harness as h

TOK = dict(obs_dim=5, num_actions=3, token_num_latents=3, token_num_heads=2, token_num_layers=1)
SMALL = dict(TOK, d_model=16, num_layers=1, num_heads=2, d_ff=24, actor_hidden=8, critic_hidden=8)
KW = dict(batch=2, steps=4, chunks=2)
RESET_KW = dict(batch=2, steps=4)
CONFIGS = {
    # gtrxl core: silu FF, o_net bias, block norms without bias, final norm, relu critic, 2-layer actor, zero
    # memory; Perceiver width 8 != d_model (input_proj)
    "cortex_xl": preset("metta_cortex_xl", **SMALL, memory_len=4, same_length=True, token_latent_dim=8),
    # agalite core: no sublayer relus, Cortex tick with r = 4 (where the tick matters), gelu FF, 3-layer actor
    "cortex_agalite": preset(
        "metta_cortex_agalite", **SMALL, d_head=8, num_oscillators=4, ff_activation="gelu", actor_layers=3
    ),
    # trxl core: memory of layer outputs, zero memory
    "metta_trxl": preset("metta_trxl", **SMALL, memory_len=4, dropout=0.0, attn_dropout=0.0),
    "metta_sliding": preset("metta_sliding", **SMALL, max_cache_size=10, token_latent_dim=12),
    "trxl_nvidia_tokens": preset("metta_trxl_nvidia", **SMALL, memory_len=4, dropout=0.0, memory_holds="inputs"),
    "lstm_tokens": preset("lstm", **SMALL, encoder="tokens"),
    "agalite_fast_tokens": preset("agalite_fast", **SMALL, d_head=8, encoder="tokens"),
}
FULL = ("cortex_xl", "cortex_agalite")  # fp64 forward


@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_parity_fp32(name):
    h.check_forward_parity(CONFIGS[name], h.FP32_TOL, **KW)


@pytest.mark.parametrize("name", FULL)
def test_forward_parity_fp64(name):
    h.check_forward_parity(CONFIGS[name].replace(dtype="float64"), h.FP64_TOL, **KW)


def test_gradient_parity_fp64():
    """Encoder, o_net bias, bias-free norms, final norm, SiLU FF, 2-layer actor, ReLU critic: all reached."""
    h.check_gradient_parity(CONFIGS["cortex_xl"].replace(dtype="float64"), **KW)


def test_round_trips_bit_exact():
    """Every new parameter kind (encoder, latents, input_proj, o_net bias, bias-free norms, final_norm,
    actor_fc2) converts by the generic rules, both ways, bit-exactly."""
    h.check_round_trips(CONFIGS["cortex_xl"])


def test_step_equals_sequence_with_the_cortex_tick():
    h.check_step_equals_sequence(CONFIGS["cortex_agalite"], **KW)


def test_reset_equals_fresh_memory_with_zero_memory():
    h.check_reset_equals_fresh(CONFIGS["cortex_xl"], **RESET_KW)


def test_memory_holds_outputs_breaks_step_mode_by_design():
    with pytest.raises(AssertionError, match="sequence vs step"):
        h.check_step_equals_sequence(CONFIGS["metta_trxl"], **KW)


def test_cortex_tick_is_not_restarted_by_reset():
    """With the Cortex tick a reset does not restart n, so the memory after a reset differs from fresh memory.

    (15 warm-up steps: a multiple of the oscillator period 2 (r - 1) = 6 would bring the tick back to 1.)"""
    with pytest.raises(AssertionError):
        h.check_reset_equals_fresh(CONFIGS["cortex_agalite"], batch=2, steps=5)
    official = CONFIGS["cortex_agalite"].replace(agalite_tick="official")  # the twins agree on it too
    h.check_forward_parity(official, h.FP32_TOL, batch=2, steps=4, chunks=1)


def test_zero_memory_is_attended_until_the_first_reset():
    """memory_init="zeros": without a reset at t = 0 the zero rows change the outputs (twins agree); masked
    memory gives other outputs."""
    cfg = CONFIGS["cortex_xl"]
    outs = {}
    for init in ("zeros", "masked"):
        c = cfg.replace(memory_init=init)
        tmodel, model, params = h.build_pair(c)
        chunks = h.make_chunks(c, **KW)
        chunks[0].reset[:, 0] = False
        j_outs, j_mem = h.run_jax(model, params, c, chunks)
        t_outs, t_mem = h.run_torch(tmodel, c, chunks)
        assert max(h.diff_report(j_outs, j_mem, t_outs, t_mem).values()) <= h.FP32_TOL
        outs[init] = h.output_leaves(j_outs[0])["logits"]
    assert np.abs(outs["zeros"] - outs["masked"]).max() > 1e-4
