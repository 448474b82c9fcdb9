"""Training runs that go wrong on purpose: a NaN reward, Ctrl-C, a second run, a damaged checkpoint, resume.

Tiny mlp runs (a few seconds each once compiled). The clean runs share one program (same total steps, stopped
early with --stop-at-iteration) and one persistent compilation cache, also passed to the subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jax_tx.cli import main as cli_main
from jax_tx.io import checkpoint
from jax_tx.ppo.logging import read_csv

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--variant", "mlp", "--env", "tmaze", "--env-kw", "corridor_length=2", "--d-model", "8",
        "--actor-hidden", "8", "--critic-hidden", "8", "--num-envs", "4", "--rollout-steps", "8",
        "--bptt-horizon", "4", "--num-minibatches", "2", "--update-epochs", "1", "--seed", "1",
        "--no-progress", "--total-steps", str(100000 * 32)]  # fmt: skip


def leaves_finite(run_dir: Path, step: int) -> bool:
    """Params and optimizer state (the first train_state leaves; the env carry may hold a skipped NaN reward)."""
    r = checkpoint.restore(run_dir / "checkpoints", step)
    arrays = jax.tree_util.tree_leaves(r.params)
    arrays += [r.extra["train_state"][k] for k in sorted(r.extra["train_state"])][: len(arrays) * 2]
    return all(np.isfinite(np.asarray(a)).all() for a in arrays if np.issubdtype(np.asarray(a).dtype, np.inexact))


def test_nan_reward_stops_with_exit_3_or_skips_and_never_saves_nan(tmp_path, capsys):
    nan = ["--env-kw", "correct_reward=NaN", "--stop-at-iteration", "5", "--checkpoint-every", "1"]
    stop = tmp_path / "stop"
    assert cli_main(["train", *TINY, *nan, "--log-dir", str(stop)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "non-finite reward" in err and "--resume" in err, err
    bad_it = int(err.split("iteration ")[1].split(":")[0])
    steps = checkpoint.all_steps(stop / "checkpoints")
    assert steps and max(steps) == bad_it - 1 and all(leaves_finite(stop, s) for s in steps)
    assert [r["iteration"] for r in read_csv(stop / "metrics.csv")][-1] == bad_it
    summary = json.loads((stop / "summary.json").read_text())
    assert summary["status"].startswith("stopped: non-finite reward")

    skip = tmp_path / "skip"
    assert cli_main(["train", *TINY, *nan, "--on-nonfinite", "skip", "--log-dir", str(skip)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((skip / "summary.json").read_text(), parse_constant=pytest.fail)
    assert summary["skipped_updates"] >= 1 and "updates skipped" in out and "compiling the training step" in out
    assert checkpoint.all_steps(skip / "checkpoints") == [1, 2, 3, 4, 5] and leaves_finite(skip, 5)
    assert summary["provenance"]["jax"] == jax.__version__
    config = json.loads((skip / "config.json").read_text())
    assert config["on_nonfinite"] == "skip"
    assert config["provenance"]["git_commit"] == summary["provenance"]["git_commit"]


def test_damaged_newest_checkpoint_falls_back_and_resume_compiles_once(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--stop-at-iteration", "3", "--checkpoint-every", "1", "--log-dir", str(run)]
    assert cli_main(["train", *TINY, *flags]) == 0
    capsys.readouterr()
    for f in (run / "checkpoints" / "3" / "params" / "d").iterdir():
        f.write_bytes(f.read_bytes()[:16])
    assert cli_main(["eval", str(run), "--episodes", "4", "--json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out.strip().splitlines()[-1])["step"] == 2
    assert "step 3 is damaged" in cap.err and "Traceback" not in cap.err and "Event loop" not in cap.err
    changed = ["--env-kw", "corridor_length=3"]
    assert cli_main(["eval", str(run), "--step", "2", "--episodes", "4", "--json", *changed]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env"] == "tmaze" and summary["env_kwargs"] == {"corridor_length": 3}  # the training env, changed

    from jax_tx.ppo.run import restore_run, restore_state
    from jax_tx.ppo.trainer import Trainer

    tcfg, _ = restore_run(run, 2)
    trainer = Trainer(tcfg)
    state = restore_state(run, trainer, 2)
    for _ in range(2):
        state, _ = trainer.run(state)
    assert trainer.run._cache_size() == 1  # restored params are placed like the rest of the state

    assert cli_main(["train", "--resume", str(run), "--stop-at-iteration", "3", "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "step 3 is damaged" in cap.out and "resumed" in cap.out and "moved the newer steps [3]" in cap.out
    assert checkpoint.all_steps(run / "checkpoints") == [1, 2, 3] and leaves_finite(run, 3)
    assert list((run / "superseded").glob("*/3"))
    assert cli_main(["train", "--resume", str(run), "--step", "1", "--stop-at-iteration", "1", "--no-progress"]) == 2
    assert "already at iteration 1" in capsys.readouterr().err


def test_sigint_checkpoints_exits_130_and_a_second_run_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "jax_tx.cli", "train", *TINY, "--checkpoint-every", "0", "--checkpoint-minutes", "0",
           "--log-dir", str(run)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            csv = run / "metrics.csv"
            if csv.exists() and len(csv.read_text().splitlines()) > 3:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        assert cli_main(["train", *TINY, "--log-dir", str(run)]) == 2
        assert "in use by a live run" in capsys.readouterr().err
        assert cli_main(["train", "--resume", str(run), "--no-progress"]) == 2
        assert f"pid {proc.pid}" in capsys.readouterr().err
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"resume with: jax-tx train --resume {run}" in err
    steps = checkpoint.all_steps(run / "checkpoints")
    rows = read_csv(run / "metrics.csv")
    assert len(steps) == 1 and steps[0] == rows[-1]["iteration"] >= 3
    assert not (run / ".lock").exists()
    assert json.loads((run / "summary.json").read_text())["status"].startswith("interrupted by SIGINT")


def test_stop_signals_defers_sigterm_until_checked():
    from jax_tx.ppo.interrupts import StopSignals

    notes = []
    with StopSignals(echo=notes.append) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.signum == signal.SIGTERM and "SIGTERM received" in notes[0]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
