"""`jax-tx convert` on Metta checkpoints: every policy and format imports exactly; export and round trip."""

import json

import jax
import numpy as np
import pytest
import torch
from metta_fixtures import fixture, write_dir, write_mpt, write_pt
from safetensors.torch import load_file

import jax_tx
import torch_ref
from jax_tx.cli.convert import main
from jax_tx.io import checkpoint
from jax_tx.io.metta.errors import MettaError
from jax_tx.io.metta.importer import import_metta
from jax_tx.io.metta.plans import PLANS
from jax_tx.io.verify import random_chunks, random_tokens
from torch_ref.nn import relative

WRITERS = {"dir": write_dir, "mpt": write_mpt, "pt": write_pt}
CASES = [
    ("metta_cortex_xl", "dir"),
    ("metta_cortex_agalite", "mpt"),
    ("metta_trxl", "pt"),
    ("metta_trxl_nvidia", "dir"),
    ("metta_sliding", "pt"),
]


def _write(tmp_path, fmt, metta, arch):
    path = tmp_path / {"dir": "run:v3", "mpt": "run:v2.mpt", "pt": "run:v1.pt"}[fmt]
    return WRITERS[fmt](path, metta, arch)


@pytest.mark.parametrize("name,fmt", CASES)
def test_metta_policy_imports_bit_exactly(tmp_path, capsys, name, fmt):
    cfg, twin, metta, arch = fixture(name)
    src = _write(tmp_path, fmt, metta, arch)
    assert main([str(src), str(tmp_path / "ckpt")]) == 0
    out = capsys.readouterr().out
    assert "(metta," in out and f"{name}:" in out  # the caveat line names what is and is not exact
    if name == "metta_sliding":
        assert "runtime state" in out and "k_cache" in out
    r = checkpoint.restore(tmp_path / "ckpt")
    assert r.cfg == cfg
    want = jax_tx.convert.torch_to_flax(twin, cfg)
    got, ref = jax.tree.leaves(r.params), jax.tree.leaves(want)
    assert jax.tree.structure(r.params) == jax.tree.structure(want)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(got, ref, strict=True))


def test_contract_forward_reproduces_the_twin(tmp_path):
    cfg, twin, metta, arch = fixture("metta_cortex_xl")
    assert main([str(write_dir(tmp_path / "run:v3", metta, arch)), str(tmp_path / "ckpt")]) == 0
    r = checkpoint.restore(tmp_path / "ckpt")
    batch, steps = 2, 5
    obs = random_tokens(r.cfg, np.random.default_rng(1), batch, steps)
    reset = np.zeros((batch, steps), bool)
    reset[1, 3] = True  # Metta's done at step 2 of env 1
    out, _ = jax_tx.make_policy(r.cfg).apply(r.params, obs, reset, jax_tx.initial_memory(r.cfg, batch))
    model = torch_ref.make_policy(cfg)
    model.load_state_dict(twin)
    with torch.no_grad():
        tout, _ = model(torch.as_tensor(obs), torch.as_tensor(reset), torch_ref.initial_memory(cfg, batch))
    assert np.abs(np.asarray(out.logits) - tout.logits.numpy()).max() < 1e-5
    assert np.abs(np.asarray(out.value) - tout.value.numpy()).max() < 1e-5


def _biased_attention(attn, b):
    """Cortex XL attention with its own q/k/v/o biases (metta_interop.md 4.8), written out, not folded."""
    cfg = attn.cfg
    n, h = cfg.num_heads, cfg.head_dim

    def forward(keys_in, allowed):
        bsz, k_len, _ = keys_in.shape
        t = allowed.shape[1]
        q, k, v = attn.qkv(keys_in).view(bsz, k_len, 3, n, h).unbind(dim=2)
        q, k, v = q + b["q"].view(n, h), k + b["k"].view(n, h), v + b["v"].view(n, h)
        q = q[:, -t:]
        pos = relative.sinusoid_embedding(relative.relative_distances(k_len, -1, keys_in.dtype), cfg.d_model)
        r = attn.r_net(pos).view(k_len, n, h)
        ac = torch.einsum("btnh,bknh->bntk", q + b["u"], k)
        bd = relative.rel_shift(torch.einsum("btnh,knh->bntk", q + b["v_r"], r))
        probs = relative.masked_softmax((ac + bd) * (h**-0.5), allowed[:, None])
        out = torch.einsum("bntk,bknh->btnh", probs, v).reshape(bsz, t, n * h)
        return attn.o_net(out)

    return forward


def test_cortex_xl_bias_folds_are_exact_in_float64(tmp_path):
    cfg, twin, metta, arch = fixture("metta_cortex_xl", dtype="float64")
    rng = np.random.default_rng(3)
    biases = []
    for i in range(cfg.num_layers):
        cell = f"_sequential_network.module.cortex.func.stack.blocks.{i}.experts.0.cell."
        layer = {}
        for name, key in (("q", "q_proj.bias"), ("k", "k_proj.bias"), ("v", "v_proj.bias"), ("o", "o_proj.bias")):
            metta[cell + key] = layer[name] = torch.as_tensor(rng.normal(size=metta[cell + key].shape))
        for name, key in (("u", "u"), ("v_r", "v")):
            metta[cell + key] = layer[name] = torch.as_tensor(rng.normal(size=metta[cell + key].shape))
        biases.append(layer)
    imp = import_metta(write_dir(tmp_path / "run:v3", metta, arch))
    assert imp.cfg == cfg
    folded = torch_ref.make_policy(cfg)
    folded.load_state_dict(imp.state_dict)
    reference = torch_ref.make_policy(cfg)
    reference.load_state_dict(twin)
    for i, b in enumerate(biases):  # the reference holds Metta's unfolded tensors
        attn = reference.core.layers[i].attn
        with torch.no_grad():
            attn.r_w_bias.copy_(b["u"])
            attn.r_r_bias.copy_(b["v_r"])
            attn.o_net.bias.copy_(b["o"])
        attn.forward = _biased_attention(attn, b)
    worst = 0.0
    mems = [torch_ref.initial_memory(cfg, 3), torch_ref.initial_memory(cfg, 3)]
    with torch.no_grad():
        for chunk in random_chunks(cfg, batch=3, steps=6, chunks=3):
            outs = []
            for j, model in enumerate((folded, reference)):
                out, mems[j] = model(torch.as_tensor(chunk.obs), torch.as_tensor(chunk.reset), mems[j])
                outs.append(out)
            worst = max(worst, (outs[0].logits - outs[1].logits).abs().max().item())
            worst = max(worst, (outs[0].value - outs[1].value).abs().max().item())
    assert 0 < worst < 1e-12  # not bit-identical (the folds reorder sums) but exact to rounding


def _weights(path):
    return load_file(str(path / "weights.safetensors"))


def test_round_trip_metta_jax_tx_metta_is_bit_exact(tmp_path, capsys):
    cfg, _, metta, arch = fixture("metta_cortex_xl")
    gtd = "_sequential_network.module.gtd_aux.func.network.module.0.module.weight"
    metta[gtd] = torch.randn_like(metta[gtd])  # trained separately: not recoverable from the policy
    src = write_dir(tmp_path / "run:v3", metta, arch)
    assert main([str(src), str(tmp_path / "ckpt")]) == 0
    assert main([str(tmp_path / "ckpt"), str(tmp_path / "back"), "--to", "metta"]) == 0
    a, b = _weights(src), _weights(tmp_path / "back")
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    assert (tmp_path / "back" / "policy_spec.json").read_bytes() == (src / "policy_spec.json").read_bytes()
    # a pickle (with the sliding policy's runtime buffers) comes back as the same tensors in the current format
    _, _, metta, arch = fixture("metta_sliding")
    pt = write_pt(tmp_path / "run:v1.pt", metta, arch)
    assert main([str(pt), str(tmp_path / "ck2")]) == 0
    assert main([str(tmp_path / "ck2"), str(tmp_path / "back2"), "--to", "metta"]) == 0
    b = _weights(tmp_path / "back2")
    assert set(b) == set(metta) and all(torch.equal(metta[k], b[k]) and metta[k].dtype == b[k].dtype for k in metta)
    spec = json.loads((tmp_path / "back2" / "policy_spec.json").read_text())
    assert spec["class_path"] == "metta.agent.policy.CheckpointPolicy"


def test_export_of_a_jax_tx_config_reads_back_and_other_variants_are_refused(tmp_path, capsys):
    cfg, twin, _, _ = fixture("metta_cortex_agalite")
    params = jax_tx.convert.torch_to_flax(twin, cfg)
    checkpoint.save(tmp_path / "native", 0, params, cfg)
    assert main([str(tmp_path / "native"), str(tmp_path / "out"), "--to", "metta"]) == 0
    imp = import_metta(tmp_path / "out")
    assert imp.cfg == cfg and all(torch.equal(imp.state_dict[k], twin[k]) for k in twin)
    other = jax_tx.config.preset("trxl", obs_dim=4, num_actions=3, d_model=8, num_heads=2, num_layers=1, d_ff=8)
    plain = jax_tx.convert.torch_to_flax(torch_ref.make_policy(other).state_dict(), other)
    checkpoint.save(tmp_path / "plain", 0, plain, other)
    capsys.readouterr()
    assert main([str(tmp_path / "plain"), str(tmp_path / "out2"), "--to", "metta"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not one of Metta's current policies" in err and "\n" not in err and not (tmp_path / "out2").exists()


def test_verify_on_a_metta_source(tmp_path, capsys):
    _, _, metta, arch = fixture("metta_trxl_nvidia")
    src = write_mpt(tmp_path / "run:v2.mpt", metta, arch)
    assert main([str(src), str(tmp_path / "ckpt"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "verify: ok" in out and "logits" in out and "value" in out


def test_sliding_linear_actor_and_action_index_transforms_are_exact(tmp_path):
    cfg, _, metta, arch = fixture("metta_sliding", dtype="float64")
    head = "_sequential_network.module.actor_head.func._module.module."
    metta[head + "weight"] = torch.randn_like(metta[head + "weight"])  # any Linear(D -> A), not on a grid
    imp = import_metta(write_dir(tmp_path / "run:v1", metta, arch))
    model = torch_ref.make_policy(imp.cfg)
    model.load_state_dict(imp.state_dict)
    seen = []
    model.core.register_forward_hook(lambda mod, args, out: seen.append(out[0]))
    chunk = random_chunks(imp.cfg, batch=2, steps=4, chunks=1)[0]
    with torch.no_grad():
        out, _ = model(torch.as_tensor(chunk.obs), torch.as_tensor(chunk.reset), torch_ref.initial_memory(cfg, 2))
    linear = seen[0] @ metta[head + "weight"].T + metta[head + "bias"]  # Metta's actor: W y + b
    assert (out.logits - linear).abs().max().item() < 1e-12
    w = metta["_sequential_network.module.sliding_transformer.func.last_action_proj.weight"][:, 0]
    columns = imp.state_dict["core.action_proj.weight"]
    assert all(torch.equal(columns[:, a], a * w) for a in range(cfg.num_actions))  # W onehot(a) = a w, bit-exact


def test_export_after_training_writes_the_inverse_map(tmp_path):
    from jax_tx.io.metta.importer import metta_state_dict

    cfg, _, metta, arch = fixture("metta_cortex_xl")
    imp = import_metta(write_dir(tmp_path / "run:v3", metta, arch))
    same, _, notes = metta_state_dict(imp.state_dict, imp.cfg, imp.extra, imp.extra_json)
    assert not notes and all(torch.equal(torch.as_tensor(same[k]), metta[k]) for k in metta)
    trained = dict(imp.state_dict, **{"critic_out.bias": imp.state_dict["critic_out.bias"] + 1.0})
    out, _, notes = metta_state_dict(trained, imp.cfg, imp.extra, imp.extra_json)
    assert len(notes) == 1 and "changed since the Metta import" in notes[0]
    cell = "_sequential_network.module.cortex.func.stack.blocks.0.experts.0.cell."
    assert not np.any(out[cell + "q_proj.bias"]) and not np.any(out[cell + "k_proj.bias"])
    aux, critic = (f"_sequential_network.module.{n}.func.network.module.2.module.bias" for n in ("gtd_aux", "critic"))
    assert np.array_equal(out[aux], out[critic]) and np.array_equal(out[critic], trained["critic_out.bias"].numpy())
    back = import_metta(write_dir(tmp_path / "again", {k: torch.as_tensor(v) for k, v in out.items()}, arch))
    assert all(torch.equal(back.state_dict[k], trained[k]) for k in trained)  # the inverse map loses nothing


def refused_cortex_agalite_export(tmp_path, capsys, **changes) -> str:
    """Save the Cortex AGaLiTe fixture's config with `changes` natively, export it to Metta: the one-line error
    (exit 2, nothing written)."""
    cfg, _, _, _ = fixture("metta_cortex_agalite")
    cfg = cfg.replace(**changes)
    torch.manual_seed(0)
    params = jax_tx.convert.torch_to_flax(torch_ref.make_policy(cfg).state_dict(), cfg)
    checkpoint.save(tmp_path / "native", 0, params, cfg)
    capsys.readouterr()
    assert main([str(tmp_path / "native"), str(tmp_path / "out"), "--to", "metta"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert not (tmp_path / "out").exists()
    return err


def test_export_refuses_sliding_without_positions(tmp_path, capsys):
    """Metta's sliding transformer adds sinusoid positions to every token: writing an imported sliding checkpoint
    back with sliding_positions="none" is refused in one line naming the field."""
    _, _, metta, arch = fixture("metta_sliding")
    imp = import_metta(write_dir(tmp_path / "run:v1", metta, arch))
    weights = {k: v.numpy() for k, v in imp.state_dict.items()}
    with pytest.raises(MettaError, match="sliding_positions='none'.*sinusoid"):
        PLANS["metta_sliding"].write(weights, imp.cfg.replace(sliding_positions="none"))


def test_export_refuses_the_eluplus1_kernel(tmp_path, capsys):
    """Cortex's AGaLiTe feature maps are relu: a config with agalite_kernel="eluplus1" computes another function
    from the same weights, so export refuses it in one line naming the field, and nothing is written."""
    err = refused_cortex_agalite_export(tmp_path, capsys, agalite_kernel="eluplus1")
    assert "agalite_kernel='eluplus1'" in err and "relu only" in err, err


def test_export_refuses_the_ungated_or_feed_forward_free_agalite_block(tmp_path, capsys):
    """Cortex's AGaLiTe block has a feed-forward and two GRU gates: agalite_gating="none" (plain residuals) and
    agalite_ff=False (no feed-forward) are each refused in one line naming the field, and nothing is written."""
    err = refused_cortex_agalite_export(tmp_path, capsys, agalite_gating="none")
    assert "agalite_gating='none'" in err and "GRU gates" in err, err
    (tmp_path / "no_ff").mkdir()
    err = refused_cortex_agalite_export(tmp_path / "no_ff", capsys, agalite_ff=False)
    assert "agalite_ff=False" in err and "feed-forward" in err, err


def test_export_refuses_a_nonzero_agalite_gate_bias(tmp_path, capsys):
    """Cortex's AGaLiTe kqvbg_proj has no bias: a config with agalite_gate_bias=-4 (its twin's beta/gamma bias
    blocks start at -4) is refused in one line naming the field, and nothing is written."""
    err = refused_cortex_agalite_export(tmp_path, capsys, agalite_gate_bias=-4.0)
    assert "kqvbg.bias is not zero (config agalite_gate_bias=-4.0" in err and "have no bias" in err, err
