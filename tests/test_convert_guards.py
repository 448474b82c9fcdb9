"""`jax-tx convert` under faults: SIGTERM, a kill between the two renames of a .msgpack pair, stale temporaries
of other conversions, and what --verify --dtype bfloat16 reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import torch_ref
from jax_tx.cli import convert as convert_cli
from jax_tx.config import preset

ROOT = Path(__file__).resolve().parents[1]


def make_pt(path: Path) -> Path:
    cfg = preset("gtrxl", 5, 3, d_model=8, num_layers=1, num_heads=2, d_ff=16, memory_len=4)
    torch.manual_seed(0)
    torch.save({"config": cfg.to_dict(), "state_dict": torch_ref.make_policy(cfg).state_dict()}, path)
    return path


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)


def test_sigterm_is_held_during_the_orbax_write_and_acted_on_after_it():
    with pytest.raises(SystemExit) as exc:
        with convert_cli.signals_deferred():
            convert_cli._terminate(signal.SIGTERM, None)  # inside the write: only noted
            reached = True
    assert reached and exc.value.code == 128 + signal.SIGTERM
    convert_cli._DEFERRED["signum"] = None
    with pytest.raises(SystemExit):
        convert_cli._terminate(signal.SIGTERM, None)  # outside: at once


def test_a_kill_between_the_renames_leaves_no_orphan_or_mismatched_sidecar(tmp_path, monkeypatch, capsys):
    src = make_pt(tmp_path / "a.pt")
    dst, side = tmp_path / "x.msgpack", tmp_path / "x.config.json"
    real_commit, calls = convert_cli.commit, []

    def killed_at_second_rename(tmp, final, force):
        calls.append(final)
        if len(calls) == 2:
            raise SystemExit(137)
        real_commit(tmp, final, force)

    monkeypatch.setattr(convert_cli, "commit", killed_at_second_rename)
    with pytest.raises(SystemExit):
        convert_cli.main([str(src), str(dst)])
    assert not (side.exists() and not dst.exists())  # never a config without its weights
    monkeypatch.setattr(convert_cli, "commit", real_commit)
    assert convert_cli.main([str(src), str(dst), "--force"]) == 0 and side.exists()
    calls.clear()
    monkeypatch.setattr(convert_cli, "commit", killed_at_second_rename)
    with pytest.raises(SystemExit):  # replacing a complete pair: the old config must not stay beside new weights
        convert_cli.main([str(src), str(dst), "--force"])
    assert not side.exists() and not [p for p in tmp_path.iterdir() if ".jax-tx-tmp-" in p.name]
    capsys.readouterr()


def test_stale_temporaries_of_other_destinations_are_swept(tmp_path):
    src = make_pt(tmp_path / "a.pt")
    pid = dead_pid()
    stale = [tmp_path / f".other.msgpack.jax-tx-tmp-{pid}", tmp_path / f".ckpt.jax-tx-tmp-{pid}"]
    stale[0].write_bytes(b"x")
    stale[1].mkdir()
    live = tmp_path / f".mine.msgpack.jax-tx-tmp-{os.getpid()}"
    live.write_bytes(b"y")
    assert convert_cli.main([str(src), str(tmp_path / "b.safetensors")]) == 0
    assert not any(p.exists() for p in stale) and live.exists()


def test_bfloat16_verify_also_reports_the_difference_to_the_original(tmp_path, capsys):
    src = make_pt(tmp_path / "a.pt")
    assert convert_cli.main([str(src), str(tmp_path / "b.safetensors"), "--dtype", "bfloat16", "--verify"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "vs the original float32 weights" in x)
    worst = float(line.split("worst ")[1].split()[0])
    assert 1e-6 < worst < 0.5  # bf16 keeps 8 mantissa bits: a visible, bounded rounding difference
