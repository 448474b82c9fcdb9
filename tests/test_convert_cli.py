"""`jax-tx convert`: round trips over every variant and format pair, --verify, every error case, kill safety."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import torch

import torch_ref
from jax_tx import cli
from jax_tx.cli import convert as convert_cli
from jax_tx.config import SCHEMA_VERSION, VARIANTS, PolicyConfig, preset
from jax_tx.io import checkpoint, convert
from jax_tx.models.policy import example_inputs

TINY = dict(d_model=8, num_layers=1, num_heads=2, d_ff=16, memory_len=4, actor_hidden=8, critic_hidden=8)
AGALITE = dict(d_head=4, eta=2, num_oscillators=2)
EXTRA = {
    "agalite": AGALITE,
    "agalite_fast": AGALITE,
    "agalite_optimized": AGALITE,
    "agalite_hybrid": dict(AGALITE, lstm_hidden=8),
    "lstm": dict(lstm_hidden=8),
    "gru": dict(lstm_hidden=8),
    "sliding": dict(max_cache_size=8),
    "slot": dict(obs_dim=2 + 3 * 3, base_dim=2, slot_dim=3, slot_grid_rows=2, slot_grid_cols=2, lstm_hidden=8),
}
# Every directed pair of the four formats once (an Euler circuit of the complete digraph), from .pt back to .pt.
CIRCUIT = [".pt", ".safetensors", "", ".msgpack", ".pt", "", ".safetensors", ".msgpack", ".safetensors", ".pt"]
CIRCUIT += [".msgpack", "", ".pt"]


def tiny(variant: str, **kw) -> PolicyConfig:
    args = {"obs_dim": 5, "num_actions": 3, **TINY, **EXTRA.get(variant, {}), **kw}
    return preset(variant, **args)


def torch_state(cfg: PolicyConfig, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return torch_ref.make_policy(cfg).state_dict()


def save_pt(path: Path, state: dict, cfg: PolicyConfig | None = None) -> Path:
    torch.save(state if cfg is None else {"config": cfg.to_dict(), "state_dict": state}, path)
    return path


def convert_ok(*argv) -> None:
    assert convert_cli.main([str(a) for a in argv]) == 0


def assert_fails(capsys, dst: Path, argv, match: str) -> str:
    """Exit 2, one line on stderr matching `match`, and DST absent (no temporaries either)."""
    rc = convert_cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("jax-tx convert: error: ") and "\n" not in err, err
    assert re.search(match, err), err
    assert not dst.exists(), dst
    assert not [p for p in dst.parent.iterdir() if ".jax-tx-" in p.name]
    return err


def read_any(path: Path) -> tuple[str, dict, PolicyConfig]:
    """(format, flat {torch key: numpy} in the stored dtype, config) of a converted file, read independently."""
    if path.suffix == ".pt":
        obj = torch.load(path, weights_only=True)
        flat = {k: v for k, v in obj["state_dict"].items()}
        return "torch", flat, PolicyConfig.from_dict(obj["config"])
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return (
                "torch",
                {k: f.get_tensor(k) for k in f.keys()},
                PolicyConfig.from_json(f.metadata()["jax_tx_config"]),
            )
    if path.suffix == ".msgpack":
        from flax import serialization

        tree = serialization.msgpack_restore(path.read_bytes())
        return "flax", tree, PolicyConfig.from_json(path.with_name(path.stem + ".config.json").read_text())
    r = checkpoint.restore(path)
    return "flax", r.params, r.cfg


def assert_same_weights(path: Path, state: dict, cfg: PolicyConfig, dtype=torch.float32) -> None:
    """The file at `path` holds exactly `state` (cast to dtype) and `cfg`."""
    with jax.enable_x64(dtype == torch.float64):
        kind, weights, stored_cfg = read_any(path)
    assert stored_cfg == cfg
    if kind == "flax":  # compare in torch layout; the flax -> torch mapping is tested bit-exact in parity_tests
        assert {np.asarray(x).dtype.name for x in jax_leaves(weights)} == {str(dtype).removeprefix("torch.")}
        with jax.enable_x64(dtype == torch.float64):
            weights = convert.flax_to_torch(weights, cfg, dtype=dtype)
    assert weights.keys() == state.keys()
    for k, v in state.items():
        assert weights[k].dtype == dtype, (path, k, weights[k].dtype)
        assert torch.equal(weights[k], v.to(dtype)), (path, k)


def jax_leaves(tree):
    return jax.tree.leaves(tree)


@pytest.mark.parametrize("variant", VARIANTS)
def test_round_trip_every_format_pair(tmp_path, variant, capsys):
    cfg = tiny(variant)
    state = torch_state(cfg)
    src = save_pt(tmp_path / "0.pt", state, cfg)
    for i, suffix in enumerate(CIRCUIT[1:], 1):
        dst = tmp_path / f"{i}{suffix}"
        convert_ok(src, dst)
        assert_same_weights(dst, state, cfg)
        src = dst
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / '12.pt'} (torch, float32)" in out
    assert not [p for p in tmp_path.iterdir() if ".jax-tx-" in p.name]


def test_bfloat16_is_stored_back_as_bfloat16(tmp_path):
    cfg = tiny("gtrxl")
    state = {k: v.to(torch.bfloat16) for k, v in torch_state(cfg).items()}
    src = save_pt(tmp_path / "bf16.pt", state, cfg)
    convert_ok(src, tmp_path / "f32", "--verify")  # default: widened to float32 (exactly)
    assert_same_weights(tmp_path / "f32", state, cfg, torch.float32)
    for i, suffix in enumerate([".safetensors", ".msgpack", "", ".pt"]):
        dst = tmp_path / f"{i}{suffix}"
        convert_ok(src, dst, "--dtype", "bfloat16")
        assert_same_weights(dst, state, cfg, torch.bfloat16)
        src = dst
    convert_ok(tmp_path / "f32", tmp_path / "back.pt", "--dtype", "bfloat16")
    assert_same_weights(tmp_path / "back.pt", state, cfg, torch.bfloat16)


def test_verify_passes_on_a_good_conversion(tmp_path, capsys):
    cfg = tiny("trxl", aux_tokens=True)
    src = save_pt(tmp_path / "a.pt", torch_state(cfg), cfg)
    convert_ok(src, tmp_path / "ck", "--verify")
    slot = tiny("slot")  # several logit heads; flax source: the other assignment of weights to twins
    convert_ok(save_pt(tmp_path / "slot.pt", torch_state(slot), slot), tmp_path / "slot_ck")
    convert_ok(tmp_path / "slot_ck", tmp_path / "slot.msgpack", "--verify")
    out = capsys.readouterr().out
    assert out.count("verify: ok (worst ") == 2
    rows = [x.split() for x in out.splitlines() if x.startswith("  ")]
    assert {"logits", "logits.0", "logits.1", "value", "memory['hidden']"} <= {r[0] for r in rows}, out
    assert all(float(r[1]) <= 1e-5 and r[2] == "ok" for r in rows), out


def test_verify_fails_on_a_corrupted_weight(tmp_path, capsys, monkeypatch):
    cfg = tiny("trxl")
    src = save_pt(tmp_path / "a.pt", torch_state(cfg), cfg)
    good = convert_cli.storage_tree

    def corrupt(canonical, dtype):
        tree = good(canonical, dtype)
        p = tree["params"]["actor_out"]
        p["bias"] = p["bias"].at[1].add(1e-3)
        return tree

    monkeypatch.setattr(convert_cli, "storage_tree", corrupt)
    assert convert_cli.main([str(src), str(tmp_path / "ck"), "--verify"]) == 1
    out, err = capsys.readouterr()
    assert "verify: FAILED (worst 1.000e-03)" in out or "verify: FAILED (worst 9.9" in out, out
    assert next(x for x in out.splitlines() if x.strip().startswith("logits")).endswith("FAIL")
    assert "not written" in err
    assert not (tmp_path / "ck").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_bare_state_dict_with_config_or_variant(tmp_path, capsys):
    cfg = tiny("trxl")
    bare = save_pt(tmp_path / "bare.pt", torch_state(cfg))
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    convert_ok(bare, tmp_path / "a.safetensors", "--config", tmp_path / "cfg.json")
    assert_same_weights(tmp_path / "a.safetensors", torch_state(cfg), cfg)
    # --variant: that preset's sizes, obs_dim / num_actions read from the weights
    lstm = preset("lstm", obs_dim=7, num_actions=4)
    convert_ok(save_pt(tmp_path / "lstm.pt", torch_state(lstm)), tmp_path / "lstm.msgpack", "--variant", "lstm")
    assert_same_weights(tmp_path / "lstm.msgpack", torch_state(lstm), lstm)
    assert_fails(
        capsys, tmp_path / "b.pt", [bare, tmp_path / "b.pt"], "holds bare weights without a config; pass --config"
    )
    assert_fails(
        capsys,
        tmp_path / "c.pt",
        [bare, tmp_path / "c.pt", "--variant", "trxl"],
        r"uses that preset's sizes; pass --config\)$",
    )


def test_existing_dst_needs_force(tmp_path, capsys):
    cfg = tiny("trxl")
    src = save_pt(tmp_path / "a.pt", torch_state(cfg), cfg)
    for dst in (tmp_path / "b.pt", tmp_path / "ck"):
        convert_ok(src, dst)
        before = sorted(str(p) for p in dst.rglob("*")) if dst.is_dir() else dst.read_bytes()
        rc = convert_cli.main([str(src), str(dst)])
        assert rc == 2 and f"{dst} exists; pass --force to replace it" in capsys.readouterr().err
        assert (sorted(str(p) for p in dst.rglob("*")) if dst.is_dir() else dst.read_bytes()) == before
    other = save_pt(tmp_path / "other.pt", torch_state(cfg, seed=1), cfg)
    convert_ok(other, tmp_path / "ck", "--force")
    convert_ok(tmp_path / "b.pt", tmp_path / "ck2")
    convert_ok(tmp_path / "ck2", tmp_path / "b.pt", "--force")  # file replaced by itself: same content
    assert_same_weights(tmp_path / "ck", torch_state(cfg, seed=1), cfg)
    shutil.copytree(tmp_path / "ck", tmp_path / "dir.pt")  # a directory in the way of a file DST
    assert convert_cli.main([str(src), str(tmp_path / "dir.pt")]) == 2
    convert_ok(src, tmp_path / "dir.pt", "--force")
    assert_same_weights(tmp_path / "dir.pt", torch_state(cfg), cfg)
    assert not [p for p in tmp_path.iterdir() if ".jax-tx-" in p.name]


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_unreadable_sources(tmp_path, capsys):
    cfg = tiny("trxl")
    src = save_pt(tmp_path / "a.pt", torch_state(cfg), cfg)
    convert_ok(src, tmp_path / "a.safetensors")
    convert_ok(src, tmp_path / "a.msgpack")
    dst = tmp_path / "out.pt"
    assert_fails(capsys, dst, [src, tmp_path / "out.h5"], r"unknown format '\.h5' .*use \.pt/\.pth, \.safetensors")
    assert_fails(capsys, dst, [tmp_path / "none.pt", dst], r"none\.pt does not exist; check the SRC path")
    for name, what in (("a.pt", "a torch.save file"), ("a.safetensors", "safetensors"), ("a.msgpack", "flax msgpack")):
        _truncate(tmp_path / name)
        assert_fails(capsys, dst, [tmp_path / name, dst], f"cannot read .*{name} as {what} .*truncated")
    (tmp_path / "text.pt").write_text("hello")
    assert_fails(capsys, dst, [tmp_path / "text.pt", dst], "cannot read .* the file is truncated or not a PyTorch")
    convert_ok(save_pt(tmp_path / "b.pt", torch_state(cfg), cfg), tmp_path / "ck")
    for data in (tmp_path / "ck").rglob("d"):  # the array data files
        shutil.rmtree(data)
    assert_fails(capsys, dst, [tmp_path / "ck", dst], r"step 0 cannot be restored .*incomplete or damaged")
    assert_fails(capsys, dst, [tmp_path / "b.pt", tmp_path / "b.pt"], "SRC and DST are the same path")
    (tmp_path / "empty").mkdir()
    assert_fails(capsys, dst, [tmp_path / "empty", dst], r"is not a jax_tx checkpoint \(no completed steps\)")


def test_weights_that_do_not_fit(tmp_path, capsys):
    cfg = tiny("trxl")
    state = torch_state(cfg)
    dst = tmp_path / "out"
    first = sorted(state)[0]
    cases = [
        (torch_state(tiny("gtrxl")), cfg, "look like variant 'gtrxl'; convert with that variant's config"),
        ({k: v for k, v in state.items() if k != first}, cfg, rf"missing keys \['{first}'\] \(1 in all\)"),
        ({**state, "extra.weight": torch.zeros(2)}, cfg, r"unexpected keys \['extra.weight'\] \(1 in all\)"),
        (state, cfg.replace(d_ff=24), r"shape mismatch at 'core.layers.0.ff.fc1.bias': the config expects \(24,\), "),
        ({**state, first: state[first].to(torch.int64)}, cfg, f"weight .*{first}.* has dtype int64; .* floating point"),
        ({k: v.double() for k, v in state.items()}, cfg, "are float64 and would be rounded to float32; pass --dtype"),
    ]
    for i, (weights, stored_cfg, match) in enumerate(cases):
        assert_fails(capsys, dst, [save_pt(tmp_path / f"{i}.pt", weights, stored_cfg), dst], match)
    # the same checks for flax sources (msgpack with the config beside it)
    convert_ok(save_pt(tmp_path / "g.pt", torch_state(tiny("gtrxl")), tiny("gtrxl")), tmp_path / "g.msgpack")
    (tmp_path / "g.config.json").write_text(cfg.to_json())
    assert_fails(capsys, dst, [tmp_path / "g.msgpack", dst], "look like variant 'gtrxl'")
    # explicit --dtype float64 keeps float64 weights (x64 only inside the conversion)
    convert_ok(save_pt(tmp_path / "f64.pt", {k: v.double() for k, v in state.items()}, cfg), dst, "--dtype", "float64")
    assert_same_weights(dst, {k: v.double() for k, v in state.items()}, cfg, torch.float64)


def test_config_problems(tmp_path, capsys):
    cfg = tiny("trxl")
    state = torch_state(cfg)
    dst = tmp_path / "out.safetensors"
    newer = {**cfg.to_dict(), "schema_version": SCHEMA_VERSION + 1}
    torch.save({"config": newer, "state_dict": state}, tmp_path / "new.pt")
    assert_fails(
        capsys, dst, [tmp_path / "new.pt", dst], f"schema_version {SCHEMA_VERSION + 1} is newer .*upgrade jax_tx"
    )
    convert_ok(save_pt(tmp_path / "a.pt", state, cfg), tmp_path / "ck")
    meta = tmp_path / "ck" / "0" / "config" / "metadata"
    meta.write_text(json.dumps(newer))
    assert_fails(capsys, dst, [tmp_path / "ck", dst], f"schema_version {SCHEMA_VERSION + 1} is newer")
    (tmp_path / "other.json").write_text(cfg.replace(d_ff=24).to_json())
    argv = [tmp_path / "a.pt", dst, "--config", tmp_path / "other.json"]
    assert_fails(capsys, dst, argv, r"stores a config that differs from --config in \['d_ff'\]; drop --config")
    argv = [tmp_path / "a.pt", dst, "--variant", "gtrxl"]
    assert_fails(capsys, dst, argv, "stores a config of variant 'trxl' but --variant says 'gtrxl'")
    (tmp_path / "bad.json").write_text(json.dumps({**cfg.to_dict(), "widht": 3}))
    argv = [tmp_path / "a.pt", dst, "--config", tmp_path / "bad.json"]
    assert_fails(capsys, dst, argv, r"unknown config field\(s\) \['widht'\]")


def test_bad_arguments_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        convert_cli.main(["a.pt", str(tmp_path / "b.pt"), "--dtype", "float16"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith("jax-tx convert: error: argument --dtype: invalid choice: 'float16'")


def test_console_script_dispatch(tmp_path, capsys):
    cfg = tiny("mlp")
    src = save_pt(tmp_path / "a.pt", torch_state(cfg), cfg)
    assert cli.main(["convert", str(src), str(tmp_path / "a.msgpack")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert cli.main(["convert", str(src), str(tmp_path / "a.msgpack")]) == 2


def test_killed_mid_write_leaves_no_dst(tmp_path):
    cfg = tiny("trxl")
    src = save_pt(tmp_path / "a.pt", torch_state(cfg), cfg)
    for dst in (tmp_path / "ck", tmp_path / "b.msgpack"):
        env = {**os.environ, convert_cli.PAUSE_ENV: "60"}
        cmd = [sys.executable, "-m", "jax_tx.cli", "convert", str(src), str(dst)]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            if "pausing" in line or time.monotonic() > deadline:
                break
        temporaries = [p for p in tmp_path.iterdir() if ".jax-tx-tmp-" in p.name]
        assert temporaries, "the conversion did not reach the rename"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert not dst.exists() and not (tmp_path / "b.config.json").exists()
        convert_ok(src, dst)  # the next run sweeps the dead process's temporaries
        assert_same_weights(dst, torch_state(cfg), cfg)
        assert not [p for p in tmp_path.iterdir() if ".jax-tx-" in p.name]


def test_float_weights_equal_after_flax_round_trip(tmp_path):
    """A .msgpack written by the tool restores with plain flax.serialization to model.init's structure."""
    from flax import serialization

    import jax_tx

    cfg = tiny("sliding")
    convert_ok(save_pt(tmp_path / "a.pt", torch_state(cfg), cfg), tmp_path / "a.msgpack")
    template = jax.eval_shape(jax_tx.make_policy(cfg).init, jax.random.PRNGKey(0), *example_inputs(cfg))
    restored = serialization.from_bytes(template, (tmp_path / "a.msgpack").read_bytes())
    expected = convert.torch_to_flax(torch_state(cfg), cfg)
    assert jax.tree.structure(restored) == jax.tree.structure(expected)
    for a, b in zip(jax_leaves(restored), jax_leaves(expected), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
