"""AGaLiTe twins: jax_tx/agalite.py vs torch_ref/agalite.py, for the four presets' modes and flags and for
non-default eta and r (small widths), plus the scan forms and the exact oscillator phase."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_tx
import torch_ref
from jax_tx.config import preset
from jax_tx.models import agalite as jag
from parity_tests import harness as h
from torch_ref.models import agalite as tag

SMALL = dict(obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_head=8, d_ff=32)
CONFIGS = {
    "agalite": preset("agalite", **SMALL),
    "agalite_fast": preset("agalite_fast", **SMALL),
    "agalite_optimized": preset("agalite_optimized", **SMALL),
    "agalite_hybrid": preset("agalite_hybrid", **SMALL, lstm_hidden=12),
    "eta5_r3_clamped_gates": preset("agalite", **SMALL, eta=5, num_oscillators=3, clamp_gates=True),
    "eluplus1_kernel": preset("agalite", **SMALL, agalite_kernel="eluplus1"),
    "fast_eluplus1_gates-4": preset("agalite_fast", **SMALL, agalite_kernel="eluplus1", agalite_gate_bias=-4.0),
    "fast_norm": preset("agalite_fast", **SMALL, agalite_fast_norm=True),
    "residual_block": preset("agalite", **SMALL, agalite_gating="none"),
    "no_feed_forward": preset("agalite", **SMALL, agalite_ff=False),
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
    """Plain step (T = 1) == associative scan (T = 6) in JAX, and the torch loop likewise, in float64.

    (In float32 the fast modes differ by ~1e-5 on memory leaves of magnitude ~6: torch's own T=6 vs T=1
    matmuls round differently and the un-normalised fast stack amplifies it; float64 shows the equations agree.)
    """
    with jax.enable_x64(True):
        h.check_step_equals_sequence(CONFIGS[name].replace(dtype="float64"), h.FP64_TOL)


def test_forward_parity_single_oscillator_fast_mode():
    """r = 1 (omega = -pi, period 2) with a non-default eta in the fast layer."""
    cfg = preset("agalite_fast", **SMALL, eta=5, num_oscillators=1).replace(dtype="float64")
    h.check_forward_parity(cfg, h.FP64_TOL)


@pytest.mark.parametrize("name", ["agalite", "agalite_fast"])
def test_forward_parity_with_orthogonal_init(name):
    """init="orthogonal" (the official AGaLiTe scheme: sqrt 2 gains, larger than most defaults): the torch
    twin's weights, converted, still give the same outputs and memory. In float64: the gains grow the second
    layer's memory to ~12, where float32 rounding alone left the twins 2.3e-5 apart on one Xeon (24 ulp, over an
    absolute 1e-5) and under it on an EPYC; in float64 they agree to ~3e-14, which a wrong equation would not."""
    h.check_forward_parity(CONFIGS[name].replace(init="orthogonal", dtype="float64"), h.FP64_TOL)


@pytest.mark.parametrize("kernel,zero_feature", [("relu", 0.0), ("eluplus1", 1.0)])
def test_feature_maps_of_a_zero_projection(kernel, zero_feature):
    """An all-zero key/query projection: relu gives psi = phi = 0 (the query reads nothing), elu + 1 gives 1 in
    every feature, in both twins; a negative pre-activation -1 gives exp(-1) under elu + 1."""
    cfg = CONFIGS["agalite"].replace(agalite_kernel=kernel, dtype="float64")
    d, eta = cfg.d_head, cfg.eta
    kqvbg = np.zeros((1, 1, cfg.num_heads, 5, d))
    kqvbg[..., 1, 0] = -1.0  # one query coordinate negative
    p = np.zeros((1, 1, cfg.num_heads, 3, eta))
    with jax.enable_x64(True):
        psi_j, phi_j, *_ = jag.feature_maps(cfg, jnp.asarray(kqvbg), jnp.asarray(p))
        psi_j, phi_j = np.asarray(psi_j), np.asarray(phi_j)
    psi_t, phi_t, *_ = (x.numpy() for x in tag.feature_maps(cfg, torch.from_numpy(kqvbg), torch.from_numpy(p)))
    expect_phi = np.full((1, 1, cfg.num_heads, d * eta), zero_feature**2)
    expect_phi[..., :eta] = (np.exp(-1.0) if kernel == "eluplus1" else 0.0) * zero_feature
    for psi, phi in ((psi_j, phi_j), (psi_t, phi_t)):
        np.testing.assert_allclose(psi, np.full_like(psi, zero_feature**2), atol=1e-15)
        np.testing.assert_allclose(phi, expect_phi, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_reset_equals_fresh_memory(name):
    h.check_reset_equals_fresh(CONFIGS[name])


@pytest.mark.parametrize("name", NAMES)
def test_round_trips_bit_exact(name):
    h.check_round_trips(CONFIGS[name])


def test_jit_matches_eager_without_retracing():
    h.check_jit_matches_and_no_retrace(CONFIGS["agalite_hybrid"])


def test_bad_inputs_raise_clear_errors():
    h.check_bad_inputs(CONFIGS["agalite"], preset("gtrxl", **SMALL))


@pytest.mark.parametrize("name", ["agalite_fast", "agalite_hybrid"])
def test_reset_inside_a_sequence_cuts_the_past(name):
    """A reset at t = 3 of a T = 6 call: outputs from t = 3 on do not depend on earlier obs or the memory."""
    cfg = CONFIGS[name]
    tmodel, model, params = h.build_pair(cfg)
    warm = h.make_chunks(cfg, seed=1)
    chunk = h.make_chunks(cfg, seed=2, chunks=1)[0]
    chunk.reset[:] = False
    chunk.reset[:, 3] = True
    other = h.Chunk(chunk.obs.copy(), chunk.reset, chunk.prev_action, chunk.prev_reward)
    other.obs[:, :3] += 1.0
    for runner, args in ((h.run_jax, (model, params, cfg)), (h.run_torch, (tmodel, cfg))):
        _, used_mem = runner(*args, warm)
        (a,), mem_a = runner(*args, [chunk], memory=used_mem)
        (b,), mem_b = runner(*args, [other])
        assert np.max(np.abs(h.output_leaves(a)["logits"][:, :3] - h.output_leaves(b)["logits"][:, :3])) > 1e-4
        for k, v in h.output_leaves(a).items():
            np.testing.assert_allclose(v[:, 3:], h.output_leaves(b)[k][:, 3:], rtol=0, atol=1e-6, err_msg=k)
        for k, v in h.memory_leaves(mem_a).items():
            np.testing.assert_allclose(v, h.memory_leaves(mem_b)[k], rtol=0, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("twin", ["jax", "torch"])
def test_memory_of_another_config_is_rejected(twin):
    cfg = CONFIGS["agalite"]
    other = cfg.replace(num_oscillators=5)
    if twin == "jax":
        model, obs, reset = jax_tx.make_policy(cfg), jnp.zeros((2, 1, 6)), jnp.zeros((2, 1), bool)
        params = model.init(jax.random.PRNGKey(0), obs, reset, jax_tx.initial_memory(cfg, 2))
        call = lambda mem: model.apply(params, obs, reset, mem)  # noqa: E731
        make_memory = jax_tx.initial_memory
    else:
        model, obs, reset = torch_ref.make_policy(cfg), torch.zeros(2, 1, 6), torch.zeros(2, 1, dtype=torch.bool)
        call = lambda mem: model(obs, reset, mem)  # noqa: E731
        make_memory = torch_ref.initial_memory
    with pytest.raises(ValueError, match=r"memory\['layers'\]\[0\]\['keys'\] has shape .*num_oscillators=8"):
        call(make_memory(other, 2))
    with pytest.raises(ValueError, match="memory\\['layers'\\] has 1 entries, config num_layers=2"):
        call(make_memory(cfg.replace(num_layers=1), 2))


def test_memory_layout_per_layer():
    cfg = CONFIGS["agalite_hybrid"].replace(eta=3, num_oscillators=5)
    for mem in (jax_tx.initial_memory(cfg, 4), torch_ref.initial_memory(cfg, 4)):
        assert sorted(mem) == ["layers", "lstm"] and len(mem["layers"]) == 2
        shapes = {k: tuple(v.shape) for k, v in mem["layers"][1].items()}
        assert shapes == {"keys": (4, 5, 2, 24), "values": (4, 5, 2, 8), "norm": (4, 2, 24), "tick": (4,)}
        assert tuple(mem["lstm"]["h"].shape) == (4, 12)
        assert str(mem["layers"][0]["tick"].dtype).endswith("int32")


# --- discounted sums: associative scan == sequential scan == plain step ---------------------------------------


def _scan_inputs(dtype, seed=0, steps=7):
    rng = np.random.default_rng(seed)
    decay = rng.uniform(0, 1, (3, steps, 1, 2, 4)) * (rng.random((3, steps, 1, 1, 1)) > 0.2)  # zeros = resets
    x = rng.normal(size=(3, steps, 5, 2, 4))
    init = rng.normal(size=(3, 5, 2, 4))
    return [jnp.asarray(a, dtype) for a in (decay, x, init)], (decay, x, init)


def _numpy_discounted_sum(decay, x, init):
    out, hprev = [], init
    for t in range(x.shape[1]):
        hprev = decay[:, t] * hprev + x[:, t]
        out.append(hprev)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float64", 1e-13)])
def test_associative_scan_equals_sequential_scan(dtype, tol):
    with jax.enable_x64(dtype == "float64"):
        (decay, x, init), raw = _scan_inputs(dtype)
        ref = _numpy_discounted_sum(*raw)
        assoc = np.asarray(jag.discounted_sum(decay, x, init, "associative"))
        seq = np.asarray(jag.discounted_sum(decay, x, init, "sequential"))
        carry, steps = init, []
        for t in range(x.shape[1]):
            carry = jag.discounted_sum(decay[:, t : t + 1], x[:, t : t + 1], carry, "step")[:, 0]
            steps.append(np.asarray(carry))
        assert assoc.dtype == np.dtype(dtype)
        np.testing.assert_allclose(assoc, ref, rtol=0, atol=tol)
        np.testing.assert_allclose(seq, ref, rtol=0, atol=tol)
        np.testing.assert_allclose(np.stack(steps, 1), ref, rtol=0, atol=tol)
    with pytest.raises(ValueError, match="method='step' needs T == 1"):
        jag.discounted_sum(decay, x, init, "step")


def test_associative_scan_gradient_equals_sequential():
    with jax.enable_x64(True):
        (decay, x, init), _ = _scan_inputs("float64", seed=1)
        w = jnp.asarray(np.random.default_rng(2).normal(size=x.shape))
        grads = [
            jax.grad(lambda d, xx, i, m=m: jnp.sum(w * jag.discounted_sum(d, xx, i, m)), argnums=(0, 1, 2))(
                decay, x, init
            )
            for m in ("associative", "sequential")
        ]
        for a, b in zip(*grads, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-12)


# --- exact oscillator phase ------------------------------------------------------------------------------------

PHASE_STEPS = np.array([1, 2, 3, 10**7 - 1, 10**7, 10**7 + 1, 10**7 + 3, 2**24 + 1], np.int64)
REF_ERR = 2e-8  # float64 reference: |omega n| ~ 5e7 rad carries ~1e-8 rounding at n = 2^24


@pytest.mark.parametrize("r", [1, 2, 4, 6, 8])
def test_oscillator_phase_exact_at_ten_million_steps(r):
    omega = np.linspace(-np.pi, np.pi, r)
    ref = np.cos(PHASE_STEPS[:, None].astype(np.float64) * omega)  # float64 numpy reference
    period = jag.oscillator_period(r)
    assert period == tag.oscillator_period(r) and np.allclose(np.cos((PHASE_STEPS[:, None] + period) * omega), ref)
    n_mod = PHASE_STEPS % period  # what the int32 tick holds
    jax32 = np.asarray(jag.oscillators(jnp.asarray(n_mod, jnp.int32), r, jnp.float32))
    torch32 = tag.oscillators(torch.as_tensor(n_mod, dtype=torch.int32), r, torch.float32).numpy()
    torch64 = tag.oscillators(torch.as_tensor(PHASE_STEPS), r, torch.float64).numpy()
    np.testing.assert_allclose(jax32, ref, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(jax32, torch32)
    np.testing.assert_allclose(torch64, ref, rtol=0, atol=REF_ERR)
    with jax.enable_x64(True):
        jax64 = np.asarray(jag.oscillators(jnp.asarray(PHASE_STEPS), r, jnp.float64))
    np.testing.assert_allclose(jax64, ref, rtol=0, atol=REF_ERR)
    if r > 2:  # Metta's float32 tick * float32 omega is off by O(1) at 10^7 steps
        naive = np.cos(PHASE_STEPS[:, None].astype(np.float32) * omega.astype(np.float32))
        assert np.max(np.abs(naive - ref)) > 0.1


@pytest.mark.parametrize("r", [1, 3, 8])
def test_step_counter_carried_past_ten_million(r):
    """A tick that has carried 10^7 - 2 steps continues the phase exactly; a reset restarts it at n = 1."""
    period = jag.oscillator_period(r)
    start = 10**7 - 2
    reset = np.zeros((2, 6), bool)
    reset[1, 3] = True
    n = np.asarray(jag.episode_steps(jnp.full((2,), start % period, jnp.int32), jnp.asarray(reset), period))
    want = np.array([start + 1 + np.arange(6), [start + 1, start + 2, start + 3, 1, 2, 3]])
    np.testing.assert_array_equal(n, want % period)
    got = np.asarray(jag.oscillators(jnp.asarray(n), r, jnp.float32))
    np.testing.assert_allclose(got, np.cos(want[..., None] * np.linspace(-np.pi, np.pi, r)), rtol=0, atol=1e-7)


def test_twins_agree_from_a_tick_past_ten_million():
    """Both twins carry the int32 tick the same way from a state 10^7 steps into an episode."""
    cfg = CONFIGS["eta5_r3_clamped_gates"]
    tick = (10**7 - 2) % jag.oscillator_period(cfg.num_oscillators)
    tmodel, model, params = h.build_pair(cfg)
    chunks = h.make_chunks(cfg, chunks=2)
    chunks[0].reset[:] = False
    chunks[0].reset[0, 4] = True
    chunks[1].reset[2] = False
    jmem, tmem = jax_tx.initial_memory(cfg, 3), torch_ref.initial_memory(cfg, 3)
    for i in range(cfg.num_layers):
        jmem["layers"][i]["tick"] = jnp.full((3,), tick, jnp.int32)
        tmem["layers"][i]["tick"] = torch.full((3,), tick, dtype=torch.int32)
    j_outs, j_mem = h.run_jax(model, params, cfg, chunks, memory=jmem)
    t_outs, t_mem = h.run_torch(tmodel, cfg, chunks, memory=tmem)
    report = h.diff_report(j_outs, j_mem, t_outs, t_mem)
    assert max(report.values()) <= h.FP32_TOL, report
    n = np.full(3, 10**7 - 2)
    for reset in np.concatenate([c.reset for c in chunks], axis=1).T:
        n = np.where(reset, 1, n + 1)
    assert n[2] == 10**7 + 10  # row 2 never resets
    want = n % jag.oscillator_period(cfg.num_oscillators)
    for mem in (j_mem, t_mem):
        np.testing.assert_array_equal(np.asarray(mem["layers"][1]["tick"]), want)


@pytest.mark.parametrize("name", ["agalite", "agalite_fast"])
def test_gate_bias_field_survives_conversion_and_keeps_parity(name):
    """agalite_gate_bias=-4: the converted flax params carry torch's beta/gamma bias blocks -4 (weights copied)
    and the twins agree within FP32_TOL."""
    cfg = CONFIGS[name].replace(agalite_gate_bias=-4.0)
    _, _, params = h.build_pair(cfg)
    layer = "kqvbgp" if cfg.agalite_mode == "fast" else "kqvbg"
    nh, dh = cfg.num_heads, cfg.head_dim
    for i in range(cfg.num_layers):
        bias = np.asarray(params["params"]["core"][f"layers_{i}"]["attn"][layer]["bias"])
        blocks = bias[: 5 * nh * dh].reshape(nh, 5, dh)
        np.testing.assert_array_equal(blocks[:, 3:], -4.0)
        np.testing.assert_array_equal(blocks[:, :3], 0.0)
    h.check_forward_parity(cfg, h.FP32_TOL, chunks=2)
