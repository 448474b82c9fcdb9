"""PolicyConfig.init: "default" keeps the parameters of before the option bit for bit (both twins);
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
# sha256 prefixes of (flax params from PRNGKey(0), torch state dict after torch.manual_seed(0)), computed with
# the code of main at 1edc457, before the init option existed (so they pin today's default initialisation).
DEFAULT_DIGESTS = {
    "gtrxl": ("89a12c5fcead7ba7", "16df651a2703fade"),
    "gtrxl_fused_aux": ("eb869315d345df77", "43801a410c6b4845"),
    "trxl": ("1a743b4ecaf93e10", "48c7bef177d2dffc"),
    "trxl_nvidia": ("1a743b4ecaf93e10", "48c7bef177d2dffc"),
    "agalite": ("5662ee71a81d3f4d", "3ac5e05e756d4713"),
    "agalite_fast": ("174fda358461c50f", "8a566e1985e48709"),
    "agalite_optimized": ("582dcfb2db19743c", "4bd797e6c49c290a"),
    "agalite_hybrid": ("90c7fcd18fb96b81", "3fc148c29229e0a7"),
    "sliding": ("1f4c03743e7d22f3", "30b04254f5905218"),
    "lstm": ("c38ebd8a7917348f", "96cde93a3ea4fabe"),
    "mlp": ("0875425e3d75d862", "f455926fc9e13ace"),
    "slot": ("4f6b395f7a002cbc", "0a2a71a833a21b94"),
    "tokens_trxl": ("b049e91f052f257c", "09af8d2ad5d09b88"),
}


def digest(named: dict[str, np.ndarray]) -> str:
    """First 16 hex digits of sha256 over (name, dtype, shape, bytes) of every array, names sorted."""
    h = hashlib.sha256()
    for k in sorted(named):
        a = np.ascontiguousarray(named[k])
        h.update(f"{k}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def flax_params(cfg) -> dict[tuple[str, ...], np.ndarray]:
    """{path of names: array} of model.init(PRNGKey(0), example inputs), on the CPU (where the digests were
    taken: an accelerator's QR may round the orthogonal initialisers differently)."""
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


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_default_init_is_bit_identical_to_before(name):
    flat = {"".join(f"[{k!r}]" for k in path): a for path, a in flax_params(CONFIGS[name]).items()}  # keystr
    assert CONFIGS[name].init == "default"
    assert (digest(flat), digest(torch_params(CONFIGS[name]))) == DEFAULT_DIGESTS[name]


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
