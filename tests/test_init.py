"""PolicyConfig.init: "default" keeps the parameters of before the option (both twins, up to last-bit rounding);
"orthogonal" gives every Dense / Linear kernel an orthogonal matrix with the gain of
jax_tx/config/init_scheme.py (K^T K = g^2 I on its orthogonal side) and a zero bias, in both twins."""

from __future__ import annotations

import hashlib
import math

import jax
import numpy as np
import pytest
import torch

import jax_tx
import torch_ref
from jax_tx.config import orthogonal_gain, preset
from jax_tx.models.policy import example_inputs

SMALL = dict(obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32)
TOKENS = dict(num_actions=3, d_model=16, num_layers=1, num_heads=2, d_ff=32, memory_len=4, encoder="tokens")
TOKENS.update(token_num_latents=3, token_num_heads=2, token_num_layers=2, token_value_norms=(1.0, 255.0, 2.0))
SLOT = dict(base_dim=3, slot_dim=4, d_model=16, num_layers=2, num_heads=2, d_ff=32, lstm_hidden=12)
CONFIGS = {
    "gtrxl": preset("gtrxl", **SMALL, memory_len=4),
    "gtrxl_fused_aux": preset("gtrxl", **SMALL, memory_len=4, gating="fused_gru", aux_tokens=True),
    "trxl": preset("trxl", **SMALL, memory_len=4),
    "trxl_nvidia": preset("trxl_nvidia", **SMALL, memory_len=5),
    "agalite": preset("agalite", **SMALL, d_head=8),
    "agalite_fast": preset("agalite_fast", **SMALL, d_head=8),
    "agalite_optimized": preset("agalite_optimized", **SMALL, d_head=8),
    "agalite_hybrid": preset("agalite_hybrid", **SMALL, d_head=8, lstm_hidden=12),
    "sliding": preset("sliding", **SMALL, max_cache_size=10),
    "lstm": preset("lstm", obs_dim=6, num_actions=3, d_model=16, lstm_hidden=12),
    "mlp": preset("mlp", **SMALL),
    "slot": preset("slot", 3 + 4 * 5, 3, **SLOT, slot_grid_rows=2, slot_grid_cols=3),
    "tokens_trxl": preset("trxl", obs_dim=5, **TOKENS),
}
# Fingerprints (see `fingerprint`) of (flax params from PRNGKey(0), torch state dict after torch.manual_seed(0)),
# computed with the code of main at 1edc457, before the init option existed, so they pin today's default
# initialisation. They replace sha256 digests of the bytes: the last bits of an initialiser differ between CPU
# models (on one Xeon, XLA's SSE4.2 and AVX-512 code paths differ in 425 of 1078 arrays, and torch's DEFAULT and
# AVX2 kernels in the last bit of uniform_), which moved the digests while the fingerprints moved by 1.1e-8.
DEFAULT_FINGERPRINTS = {
    "agalite": (
        ("0d0e39fce952358a", (50.22982098, 8.156584161, -18.43722053, 9.433863918), 3149.058268),
        ("2739cd2a8d42390d", (11.1039275, -4.917187797, -19.41054995, 2.374605001), 2543.892591),
    ),
    "agalite_fast": (
        ("219f110307ffeea9", (-14.02623982, -2.948837177, -3.951174752, 22.12176551), 1192.145251),
        ("bbdcafbd5607f8c4", (-7.562082239, 10.29281775, 9.765915201, -5.693421699), 1196.574826),
    ),
    "agalite_hybrid": (
        ("c218fd25f43d65b3", (47.26234966, 6.268685586, -22.54772088, 18.55094974), 3397.497131),
        ("7e6253e74a2b0b91", (-5.83924779, -6.579307836, -27.47819209, 7.423122406), 2776.559778),
    ),
    "agalite_optimized": (
        ("4f802b3844331b51", (9.542376993, 7.614623178, -19.63878271, 17.5834274), 1203.332045),
        ("f26bd09d5a809378", (13.13020633, -0.661550739, 8.816849997, 13.77421259), 1208.560613),
    ),
    "gtrxl": (
        ("e24c93474b5170ff", (-18.6766043, -11.70479171, 0.5256117129, 17.13641273), 3075.691679),
        ("083bff4d044ed377", (-19.3160797, 2.538011317, 0.7603051993, -24.53541264), 2249.846026),
    ),
    "gtrxl_fused_aux": (
        ("33d53be40f9b6e4b", (-13.3306679, 11.71876096, 12.93255463, -1.441061816), 2737.038871),
        ("a958dffd0f5a28dd", (-10.23290545, -21.51903977, 6.546898871, 10.2334961), 2048.021355),
    ),
    "lstm": (
        ("03e431fde8d35978", (-12.20620658, 0.3913461263, -1.745102149, 12.33821165), 994.4985449),
        ("fcbc1a12c5d6208e", (-4.936519921, -1.85392968, -10.78682612, 9.935032547), 997.5260253),
    ),
    "mlp": (
        ("70597f3d90f27040", (3.383074088, -6.679658016, -6.121749211, 20.06575504), 851.8917742),
        ("c8cbb11c341f0b3b", (2.223624174, 6.681820797, 6.667310228, -0.5342408492), 816.4295881),
    ),
    "sliding": (
        ("15876b183f67be0e", (-35.49409883, 22.25590341, -14.88180075, 10.48252842), 1648.055395),
        ("93bcf6baa2007e0c", (-12.7121213, -7.685708092, -3.625255838, 2.687560278), 1670.811194),
    ),
    "slot": (
        ("363ff05de8ff65e8", (-8.580098734, -1.242462357, 4.175716535, -13.81735055), 1310.506047),
        ("ef07dff67864d309", (-8.29027747, -6.559195691, 3.082751171, 2.833174824), 1311.27453),
    ),
    "tokens_trxl": (
        ("fca1dac4a021f0ea", (-49.62823595, 7.527354096, -9.648548546, 39.9399979), 2282.358986),
        ("c8ac17f67a99cb6c", (-11.8778104, 2.830077102, -5.160500997, -9.485164199), 1765.473978),
    ),
    "trxl": (
        ("f52b3a12a69a8583", (-10.30000375, 14.19394198, -23.60521374, 7.376391524), 1684.475287),
        ("30acbd9234a05663", (7.186178147, -2.861275175, 7.079870723, 5.580945486), 1353.804099),
    ),
    "trxl_nvidia": (
        ("f52b3a12a69a8583", (-10.30000375, 14.19394198, -23.60521374, 7.376391524), 1684.475287),
        ("30acbd9234a05663", (7.186178147, -2.861275175, 7.079870723, 5.580945486), 1353.804099),
    ),
}
# |fingerprint - reference| <= RTOL * mass: 90x the cross-ISA deviation above; a change of one weight by ~1e-3 of
# the mean |weight| x the number of weights already exceeds it (test_fingerprint_sees_one_changed_weight)
RTOL = 1e-6
PHI = 0.6180339887498949


def fingerprint(named: dict[str, np.ndarray]) -> tuple[str, tuple[float, ...], float]:
    """(structure, projections, mass). structure: the first 16 hex digits of sha256 over the sorted
    (name, dtype, shape) list, compared exactly. With x the float64 concatenation of every array in name order,
    projections p_k = sum_i x_i cos(k i PHI) for k = 1..4 (i = 1..n) and mass = sum_i |x_i|, compared to
    RTOL * mass: last-bit rounding moves them by ~1e-8 of the mass, a different initialiser by far more."""
    keys = sorted(named)
    h = hashlib.sha256()
    for k in keys:
        h.update(f"{k}|{named[k].dtype}|{named[k].shape};".encode())
    x = np.concatenate([np.ravel(named[k]).astype(np.float64) for k in keys])
    i = np.arange(1, x.size + 1, dtype=np.float64)
    return h.hexdigest()[:16], tuple(float(x @ np.cos(k * i * PHI)) for k in range(1, 5)), float(np.abs(x).sum())


def assert_fingerprint(named: dict[str, np.ndarray], ref: tuple[str, tuple[float, ...], float]) -> None:
    structure, proj, mass = fingerprint(named)
    assert structure == ref[0], "parameter names, dtypes or shapes changed"
    worst = max(abs(mass - ref[2]), *(abs(a - b) for a, b in zip(proj, ref[1], strict=True)))
    assert worst <= RTOL * ref[2], f"values moved by {worst:.3e} > {RTOL:.0e} x mass {ref[2]:.1f}"


def flax_params(cfg) -> dict[tuple[str, ...], np.ndarray]:
    """{path of names: array} of model.init(PRNGKey(0), example inputs), on the CPU (where the fingerprints
    were taken: an accelerator's QR may round the orthogonal initialisers differently)."""
    with jax.default_device(jax.devices("cpu")[0]):
        params = jax_tx.make_policy(cfg).init(jax.random.PRNGKey(0), *example_inputs(cfg, 1, 1))
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {tuple(str(k.key) for k in path): np.asarray(x) for path, x in leaves}


def torch_params(cfg) -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    return {k: v.detach().numpy() for k, v in torch_ref.make_policy(cfg).state_dict().items()}


def orthogonality_error(k: np.ndarray, gain: float) -> float:
    """max |K^T K - g^2 I| (or |K K^T - g^2 I| when K has more columns than rows: its orthogonal side)."""
    k = k.astype(np.float64)
    gram = k.T @ k if k.shape[0] >= k.shape[1] else k @ k.T
    return float(np.abs(gram - gain**2 * np.eye(gram.shape[0])).max())


def flat_flax_params(cfg) -> dict[str, np.ndarray]:
    return {"/".join(path): a for path, a in flax_params(cfg).items()}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_default_init_is_unchanged_from_before(name):
    assert CONFIGS[name].init == "default"
    flax_ref, torch_ref_fp = DEFAULT_FINGERPRINTS[name]
    assert_fingerprint(flat_flax_params(CONFIGS[name]), flax_ref)
    assert_fingerprint(torch_params(CONFIGS[name]), torch_ref_fp)


@pytest.mark.parametrize("twin", ["flax", "torch"])
def test_fingerprint_sees_one_changed_weight(twin):
    """The tolerance is not so loose that it hides a real change: 0.01 added to one weight (of 1e4-1e5), or two
    same-shaped arrays swapped, fails it."""
    named = flat_flax_params(CONFIGS["gtrxl"]) if twin == "flax" else torch_params(CONFIGS["gtrxl"])
    ref = DEFAULT_FINGERPRINTS["gtrxl"][0 if twin == "flax" else 1]
    assert_fingerprint(named, ref)
    big = max(named, key=lambda k: named[k].size)
    one = np.zeros(named[big].size, named[big].dtype)
    one[7] = 0.01
    nudged = {**named, big: named[big] + one.reshape(named[big].shape)}
    with pytest.raises(AssertionError, match="values moved"):
        assert_fingerprint(nudged, ref)
    keys = sorted(named)
    same_shape = ((a, b) for a in keys for b in keys if a < b and named[a].shape == named[b].shape)
    a, b = next((a, b) for a, b in same_shape if not np.array_equal(named[a], named[b]))
    with pytest.raises(AssertionError, match="values moved"):
        assert_fingerprint({**named, a: named[b], b: named[a]}, ref)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_orthogonal_init_flax(name):
    cfg = CONFIGS[name].replace(init="orthogonal")
    params = flax_params(cfg)
    kernels = {path: k for path, k in params.items() if path[-1] == "kernel"}
    assert len(kernels) >= 4
    for path, k in kernels.items():
        assert orthogonality_error(k, orthogonal_gain(path[-2])) < 1e-5, path
        bias = params.get(path[:-1] + ("bias",))
        assert bias is None or not bias.any(), path
    heads = {path[-2]: k for path, k in kernels.items() if path[-2] in ("actor_out", "critic_out")}
    assert orthogonality_error(heads["actor_out"], 0.01) < 1e-9  # gain 0.01: K^T K = 1e-4 I
    assert orthogonality_error(heads["critic_out"], 1.0) < 1e-6  # [hidden, 1]: |K| = 1
    hidden = [k for path, k in kernels.items() if path[-2] not in ("actor_out", "critic_out", "slot_query")]
    assert all(orthogonality_error(k, math.sqrt(2)) < 1e-5 for k in hidden)
    for path, v in params.items():  # gate biases, LayerNorms and embeddings as in the default scheme
        if path[-1] == "bg":
            assert np.all(v == cfg.gate_bias), path
        if path[-1] == "scale":
            assert np.all(v == 1.0), path


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_orthogonal_init_torch(name):
    cfg = CONFIGS[name].replace(init="orthogonal")
    torch.manual_seed(0)
    model = torch_ref.make_policy(cfg)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert len(linears) >= 4
    for n, m in linears.items():
        layer = n.rsplit(".", 1)[-1]
        assert orthogonality_error(m.weight.detach().numpy().T, orthogonal_gain(layer)) < 1e-5, n
        assert m.bias is None or not m.bias.detach().any(), n
    assert orthogonality_error(model.actor_out.weight.detach().numpy().T, 0.01) < 1e-9
    assert orthogonality_error(model.critic_out.weight.detach().numpy().T, 1.0) < 1e-6
    for n, p in model.named_parameters():
        if n.endswith(".bg"):
            assert torch.all(p == cfg.gate_bias), n


def test_orthogonal_init_changes_default_kernels_and_keeps_the_tree():
    """GTrXL's gate matrices are lecun-normal by default (not orthogonal); the option changes values only."""
    default, ortho = flax_params(CONFIGS["gtrxl"]), flax_params(CONFIGS["gtrxl"].replace(init="orthogonal"))
    assert {p: a.shape for p, a in default.items()} == {p: a.shape for p, a in ortho.items()}
    gates = [p for p in default if p[-2] == "w_r"]
    assert gates and all(orthogonality_error(default[p], math.sqrt(2)) > 0.1 for p in gates)
    assert all(orthogonality_error(ortho[p], math.sqrt(2)) < 1e-5 for p in gates)
    torch.manual_seed(0)
    tmodel = torch_ref.make_policy(CONFIGS["gtrxl"].replace(init="orthogonal"))
    assert set(tmodel.state_dict()) == set(torch_params(CONFIGS["gtrxl"]))


GRU_CFG = preset("gru", obs_dim=6, num_actions=3, d_model=16, num_layers=2, lstm_hidden=12)
GATE_CASES = {  # config, field, gates per bias (the field's block is gate 1), LSTM / GRU layers in the model
    "lstm": (CONFIGS["lstm"], "lstm_forget_bias", 4, 1),
    "agalite_hybrid": (CONFIGS["agalite_hybrid"], "lstm_forget_bias", 4, 1),
    "slot": (CONFIGS["slot"], "lstm_forget_bias", 4, 1),
    "gru": (GRU_CFG, "gru_update_bias", 3, 2),
}


@pytest.mark.parametrize("init", ["default", "orthogonal"])
@pytest.mark.parametrize("name", sorted(GATE_CASES))
def test_gate_bias_field_sets_only_its_block_in_both_twins(name, init):
    """field=3.0: gate block 1 (LSTM f, GRU z) of every layer's bias_ih_l0 is 3.0; every other parameter
    (the other blocks, bias_hh_l0, all weights) equals the init with the field's default, in both twins."""
    base, field, gates, layers = GATE_CASES[name]
    base = base.replace(init=init)
    cfg = base.replace(**{field: 3.0})
    default = 1.0 if field == "lstm_forget_bias" else 0.0
    assert getattr(base, field) == default
    for params in (flax_params, torch_params):
        before, after = params(base), params(cfg)
        assert before.keys() == after.keys()
        biases = [k for k in after if "bias_ih_l0" in str(k)]
        assert len(biases) == layers, biases
        for k in after:
            if k not in biases:
                np.testing.assert_array_equal(after[k], before[k], err_msg=str(k))
                continue
            h = after[k].shape[0] // gates
            block = np.zeros(after[k].shape, bool)
            block[h : 2 * h] = True
            assert np.all(after[k][block] == 3.0) and np.all(before[k][block] == default), k
            np.testing.assert_array_equal(after[k][~block], before[k][~block], err_msg=str(k))
            assert not before[k][~block].any(), k


AGALITE_GATE_CASES = ("agalite", "agalite_fast", "agalite_optimized", "agalite_hybrid")


def _kqvbg_bias(key) -> bool:
    """True for the bias of a layer's k, q, v, beta, gamma projection (kqvbg, or fast mode's fused kqvbgp)."""
    names = key if isinstance(key, tuple) else tuple(key.split("."))
    return names[-1] == "bias" and names[-2] in ("kqvbg", "kqvbgp")


@pytest.mark.parametrize("init", ["default", "orthogonal"])
@pytest.mark.parametrize("name", AGALITE_GATE_CASES)
def test_agalite_gate_bias_sets_only_the_beta_gamma_blocks_in_both_twins(name, init):
    """agalite_gate_bias=-4: blocks 3 (beta) and 4 (gamma) of every head in the first 5 H D entries of every
    layer's kqvbg / kqvbgp bias are -4; every other entry and parameter equals the init at the default 0, in
    both twins, and the two twins' projection biases are equal."""
    base = CONFIGS[name].replace(init=init)
    cfg = base.replace(agalite_gate_bias=-4.0)
    assert base.agalite_gate_bias == 0.0
    nh, dh = cfg.num_heads, cfg.head_dim
    found = {}
    for params in (flax_params, torch_params):
        before, after = params(base), params(cfg)
        assert before.keys() == after.keys()
        biases = sorted(k for k in after if _kqvbg_bias(k))
        assert len(biases) == cfg.num_layers, biases
        found[params.__name__] = [after[k] for k in biases]
        for k in after:
            if k not in biases:
                np.testing.assert_array_equal(after[k], before[k], err_msg=str(k))
                continue
            assert after[k].shape[0] == 5 * nh * dh + (3 * nh * cfg.eta if cfg.agalite_mode == "fast" else 0), k
            block = np.zeros(after[k].shape, bool)
            block[: 5 * nh * dh].reshape(nh, 5, dh)[:, 3:5] = True
            assert block.sum() == 2 * nh * dh
            assert np.all(after[k][block] == -4.0) and not before[k].any(), k
            np.testing.assert_array_equal(after[k][~block], before[k][~block], err_msg=str(k))
    for a, b in zip(found["flax_params"], found["torch_params"], strict=True):
        np.testing.assert_array_equal(a, b)
