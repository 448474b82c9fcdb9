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
    assert set(data) == {"machine", "results"}
    assert set(data["results"]) == {"trxl"}
    for row in data["results"].values():
        assert set(row) == KEYS
        assert all(isinstance(x, float) and math.isfinite(x) and x > 0 for x in row.values()), row
    machine = data["machine"]
    assert machine["torch_threads"] == 1 and machine["jax"] and machine["cpu_count"] >= 1
    assert machine["xla_flags"] == " ".join(f for f in CPU_XLA_FLAGS if jaxlib_knows_flag(f))
    details = json.loads(out.with_suffix(".details.json").read_text())["details"]
    assert abs(details["trxl"]["loss0"]["jax"] - details["trxl"]["loss0"]["torch"]) < 1e-5  # same weights, same loss
    assert out.with_suffix(".png").stat().st_size > 0


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
