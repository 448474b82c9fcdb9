"""`jax-tx bench`: the JSON contract other tools read, from a real (tiny) run of the command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from jax_tx.cli import CPU_XLA_FLAGS, jaxlib_knows_flag, set_default_xla_flags

KEYS = {
    "train_speedup_vs_torch_eager",
    "train_speedup_vs_torch_compile",
    "rollout_speedup_vs_torch_eager",
    "end_to_end_speedup_vs_torch_loop",
}


def test_bench_quick_writes_the_contract_json(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cmd = [sys.executable, "-m", "jax_tx.cli", "bench", "--quick", "--variants", "trxl"]  # one variant: < 30 s
    proc = subprocess.run(cmd + ["--torch-threads", "1", "--json", str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert set(data) == {"machine", "config", "results"}
    config = data["config"]  # --quick keeps the default steps / iterations per call
    assert (config["size"], config["train_steps_per_call"], config["e2e_iterations_per_call"]) == ("default", 4, 5)
    assert (config["batch"], config["d_model"], config["quick"]) == (4, 16, True)
    assert set(data["results"]) == {"trxl"}
    for row in data["results"].values():
        assert set(row) == KEYS
        assert all(isinstance(x, float) and math.isfinite(x) and x > 0 for x in row.values()), row
    machine = data["machine"]
    assert machine["torch_threads"] == 1 and machine["jax"] and machine["cpu_count"] >= 1
    assert machine["xla_flags"] == " ".join(f for f in CPU_XLA_FLAGS if jaxlib_knows_flag(f))
    details = json.loads(out.with_suffix(".details.json").read_text())["details"]
    assert abs(details["trxl"]["loss0"]["jax"] - details["trxl"]["loss0"]["torch"]) < 1e-5  # same weights, same loss
    # jax e2e calls: compile + 2 warm-up + 2 rounds x 1 (--quick: max_iters 1), 5 iterations each
    assert details["trxl"]["e2e_jax_iterations_done"] == 5 * 5
    assert out.with_suffix(".png").stat().st_size > 0


def test_timed_reports_seconds_per_unit(monkeypatch):
    from jax_tx.cli import bench_cases

    clock = [0.0]
    monkeypatch.setattr(bench_cases.time, "perf_counter", lambda: clock[0])

    def call():  # one call: 2 s on the fake clock
        clock[0] += 2.0
        return clock[0]

    finished = []
    run = bench_cases.timed(call, units_per_call=4, finish=finished.append)
    assert run(3) == 6.0 / (3 * 4)  # 3 calls of 4 steps each: 0.5 s per step
    assert finished == [6.0]  # finish sees the last call's result only
    assert bench_cases.timed(call)(2) == 2.0


def test_train_case_runs_k_adam_steps_per_call_in_both_twins():
    from jax_tx.cli.bench import build_parser, policy_config, resolve
    from jax_tx.cli.bench_cases import TrainCase

    args = resolve(build_parser().parse_args(["--quick"]), ["--quick"])
    cfg = policy_config("mlp", args, 4, 3)
    case = TrainCase(cfg, 2, 3, 0.2, 1e-3, "cpu", None, steps_per_call=3)
    assert abs(case.loss0["jax"] - case.loss0["torch"]) < 1e-5  # step 1's minibatch, same weights
    case.timers["jax"](2)
    case.timers["torch_eager"](1)
    assert int(case.state[1][0].count) == 2 * 3  # optax adam: one count per step
    assert {int(st["step"]) for st in case.torch_opt.state.values()} == {3}


def test_size_preset_fills_what_is_not_given():
    from jax_tx.cli.bench import build_parser, resolve

    def parse(*argv):
        return resolve(build_parser().parse_args(list(argv)), list(argv))

    large = parse("--size", "large", "--batch=32")
    assert (large.batch, large.d_model, large.d_ff, large.steps, large.layers) == (32, 256, 512, 16, 2)
    default = parse()
    assert (default.batch, default.d_model, default.d_ff, default.train_steps_per_call) == (64, 64, 128, 4)
    assert default.e2e_iterations_per_call == 5
    assert parse("--quick", "--train-steps-per-call", "2").train_steps_per_call == 2
    with pytest.raises(SystemExit):
        parse("--quick", "--size", "large")


def test_bench_rejects_a_multi_head_variant(capsys):
    from jax_tx.cli.bench import main

    assert main(["--variants", "slot"]) == 2
    assert "slot" in capsys.readouterr().err


@pytest.mark.parametrize("preset_flags", [None, "--xla_dump_to=/nowhere"])
def test_entry_point_xla_flags_only_when_the_user_set_none(preset_flags):
    env = {} if preset_flags is None else {"XLA_FLAGS": preset_flags}
    set_default_xla_flags(env, modules={})  # as before jax is imported
    if preset_flags is None:
        assert env["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=dot"  # the installed jaxlib has it
    else:
        assert env == {"XLA_FLAGS": preset_flags}
    assert not jaxlib_knows_flag("--xla_cpu_no_such_flag_for_jax_tx=1")
    late = {}
    set_default_xla_flags(late, modules={"jax": None})  # jax imported: its backend may be up, leave it alone
    assert late == {}
