"""Metta checkpoint readers: the restricted unpickler (never runs code), the three formats, refusals (exit 2)."""

import builtins
import os
import subprocess
import sys
import types

import pytest
import torch
from metta_fixtures import fixture, write_dir, write_mpt, write_pt

import torch_ref
from jax_tx import config
from jax_tx.cli.convert import main
from jax_tx.io.metta.arch import format_architecture, parse_architecture
from jax_tx.io.metta.errors import MettaError, UnsafePickleError
from jax_tx.io.metta.unpickle import read_pickled_state_dict


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _marker_cmds(marker):
    return [
        (os.system, f"touch {marker}"),
        (builtins.eval, f"open({str(marker)!r}, 'w')"),
        (subprocess.Popen, ["touch", str(marker)]),
    ]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["os.system", "builtins.eval", "subprocess.Popen"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, capsys, which):
    marker = tmp_path / "pwned"
    func, arg = _marker_cmds(marker)[which]
    src = tmp_path / "run:v1.pt"
    torch.save({"policy": _Evil(func, arg), "w": torch.zeros(2)}, src)
    with pytest.raises(UnsafePickleError, match="not on the allowlist"):
        read_pickled_state_dict(src)
    assert main([str(src), str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not on the allowlist" in err
    assert not marker.exists() and not (tmp_path / "dst").exists()


def test_function_of_another_package_is_refused_when_called(tmp_path):
    marker = tmp_path / "pwned"
    mod = types.ModuleType("evilpkg")

    def boom(path):
        open(path, "w").close()

    boom.__module__, boom.__qualname__ = "evilpkg", "boom"
    mod.boom = boom
    sys.modules["evilpkg"] = mod
    try:
        torch.save(_Evil(boom, str(marker)), tmp_path / "x.pt")
    finally:
        del sys.modules["evilpkg"]
    with pytest.raises(UnsafePickleError, match="evilpkg.boom"):
        read_pickled_state_dict(tmp_path / "x.pt")
    assert not marker.exists()


def test_getattr_never_reaches_a_real_attribute():
    import collections

    from jax_tx.io.metta.unpickle import resolve_global

    safe_getattr = resolve_global("__builtin__", "getattr")
    with pytest.raises(UnsafePickleError):
        safe_getattr(collections.OrderedDict, "fromkeys")  # a real object: refused
    relu = safe_getattr(resolve_global("torch._C", "_VariableFunctionsClass"), "relu")  # inert placeholder
    with pytest.raises(UnsafePickleError, match="_VariableFunctionsClass.relu"):
        relu(torch.zeros(1))


def test_pickled_module_state_dict_is_rebuilt_exactly(tmp_path):
    cfg = config.preset("trxl", obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32, memory_len=4)
    model = torch_ref.make_policy(cfg)
    model.register_buffer("scratch", torch.ones(3), persistent=False)
    model.register_buffer("counter", torch.arange(4))
    torch.save(model, tmp_path / "m.pt")
    state, root, _ = read_pickled_state_dict(tmp_path / "m.pt")
    want = model.state_dict()
    assert root == "torch_ref.models.policy.Policy"
    assert list(state) == list(want) and "scratch" not in state
    assert all(torch.equal(state[k], want[k]) and state[k].dtype == want[k].dtype for k in want)


def test_architecture_string_is_parsed_as_data_never_evaluated(tmp_path):
    text = "a.B(x=1, y=[c.D(name='n', z=(1, 2.5))], w={'k': -3}, f=None)"
    tree = parse_architecture(text)
    assert tree == {"class_path": "a.B", "x": 1, "y": [{"class_path": "c.D", "name": "n", "z": (1, 2.5)}]} | {
        "w": {"k": -3},
        "f": None,
    }
    assert parse_architecture(format_architecture(tree)) == tree
    marker = tmp_path / "pwned"
    for bad in (f"a.B(x=__import__('os').system('touch {marker}'))", "a.B(x=open('f'))", "a.B(**d)", "1 + 2"):
        with pytest.raises(MettaError):
            parse_architecture(bad)
    assert not marker.exists()


def _convert_fails(capsys, src, dst, match):
    assert main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and match in err, err
    assert not dst.exists()


@pytest.fixture(scope="module")
def xl():
    return fixture("metta_cortex_xl")


def test_truncated_and_incomplete_files_exit_2(tmp_path, capsys, xl):
    _, _, metta, arch = xl
    mpt = write_mpt(tmp_path / "a.mpt", metta, arch)
    (tmp_path / "cut.mpt").write_bytes(mpt.read_bytes()[: mpt.stat().st_size // 2])
    _convert_fails(capsys, tmp_path / "cut.mpt", tmp_path / "d1", "truncated")
    pt = write_pt(tmp_path / "a.pt", metta, arch)
    (tmp_path / "cut.pt").write_bytes(pt.read_bytes()[: pt.stat().st_size - 4000])
    _convert_fails(capsys, tmp_path / "cut.pt", tmp_path / "d2", "truncated")
    write_mpt(tmp_path / "now.mpt", metta, arch, weights=False)
    _convert_fails(capsys, tmp_path / "now.mpt", tmp_path / "d3", "has no weights.safetensors")
    d = write_dir(tmp_path / "run:v2", metta, arch)
    (d / "weights.safetensors").unlink()
    _convert_fails(capsys, d, tmp_path / "d4", "has no weights.safetensors")


def test_non_float_weights_exit_2(tmp_path, capsys, xl):
    _, _, metta, arch = xl
    key = next(k for k in metta if k.endswith("ffn_in.weight"))
    bad = dict(metta, **{key: metta[key].to(torch.int32)})
    _convert_fails(capsys, write_dir(tmp_path / "run:v1", bad, arch), tmp_path / "dst", "must be floating point")


def test_unknown_or_contradicting_specs_and_keys_exit_2(tmp_path, capsys, xl):
    _, _, metta, arch = xl
    wrong = arch.replace("'d_hidden': 16", "'d_hidden': 64")
    assert wrong != arch
    _convert_fails(capsys, write_dir(tmp_path / "a", metta, wrong), tmp_path / "d1", "contradicts the weights")
    extra = dict(metta, **{"_sequential_network.module.fancy.func.w": torch.zeros(2)})
    _convert_fails(capsys, write_dir(tmp_path / "b", extra, arch), tmp_path / "d2", "unsupported model")
    _, _, tp, tp_arch = fixture("metta_trxl")
    wrong = tp_arch.replace("'n_heads': 2", "'n_heads': 4")
    assert wrong != tp_arch
    _convert_fails(capsys, write_mpt(tmp_path / "t.mpt", tp, wrong), tmp_path / "d4", "n_heads = 4")
    cut = {k: v for k, v in metta.items() if not k.endswith("blocks.1.experts.0.cell.u")}
    _convert_fails(capsys, write_dir(tmp_path / "e", cut, arch), tmp_path / "d5", "incomplete")
    other = {k.replace("cortex.func.stack", "mystery.func.net"): v for k, v in metta.items()}
    _convert_fails(capsys, write_dir(tmp_path / "c", other, arch), tmp_path / "d3", "unsupported model")


def test_metta_gtrxl_and_pre_cortex_agalite_are_refused_with_the_reason(tmp_path, capsys, xl):
    _, _, metta, arch = xl
    gtrxl = dict(metta, **{"transformer_module.layers.0.gate1.gate_proj.weight": torch.zeros(3, 2)})
    _convert_fails(capsys, write_dir(tmp_path / "g", gtrxl, arch), tmp_path / "d1", "absolute positions")
    key = "_sequential_network.module.agalite_transformer.func._core.encoders.0.ln1.weight"
    agalite = dict(metta, **{key: torch.ones(4)})
    _convert_fails(capsys, write_dir(tmp_path / "a", agalite, arch), tmp_path / "d2", "ELU+1 kernel")


def test_unknown_class_paths_exit_2_and_a_zipped_directory_reads(tmp_path, capsys, xl):
    import json
    import zipfile

    from jax_tx.io.metta.readers import read_metta

    cfg, _, metta, arch = xl
    d = write_dir(tmp_path / "run:v1", metta, arch)
    spec = json.loads((d / "policy_spec.json").read_text())
    (d / "policy_spec.json").write_text(json.dumps(dict(spec, class_path="some.scripted.RandomPolicy")))
    _convert_fails(capsys, d, tmp_path / "d1", "class_path 'some.scripted.RandomPolicy'")
    _convert_fails(capsys, write_mpt(tmp_path / "x.mpt", metta, "other.Policy(a=1)"), tmp_path / "d2", "unknown policy")
    good = write_dir(tmp_path / "run:v2", metta, arch)
    with zipfile.ZipFile(tmp_path / "run:v2.zip", "w") as z:
        for f in good.iterdir():
            z.write(f, f"run:v2/{f.name}")
    src = read_metta(tmp_path / "run:v2.zip")
    assert src.spec_text == (good / "policy_spec.json").read_text() and set(src.state_dict) == set(metta)
