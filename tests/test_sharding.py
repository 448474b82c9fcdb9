"""Training on many devices (jax_tx/ppo/sharding.py).

Multi-device checks run tests/sharding_worker.py in subprocesses: 8 forced CPU devices need XLA_FLAGS
before jax starts, and jax.distributed needs fresh processes; this process keeps seeing 1 device.
Tolerance across device counts: float32 max-abs <= 1e-5 (the reductions over the batch are summed in
another order, see the sharding module docstring); measured ~6e-8 after 3 iterations.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jax_tx.config import ConfigError
from jax_tx.io import checkpoint
from jax_tx.ppo import sharding

WORKER = Path(__file__).with_name("sharding_worker.py")
COUNTS = (1, 2, 4, 8)
TOL = 1e-5
TIMEOUT_S = 900
COMPILE_FLAGS = "--xla_backend_optimization_level=0"
"""LLVM -O0 about halves XLA:CPU compile time here. Every device count (and the 2 processes) is compiled with
it, so the comparison stands; -O0 itself moves these params by <= 4.2e-7 against the default level (LLVM's
vectorised loops sum in another order), measured on 1 and 8 devices."""


def worker_env(xla_flags: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in sharding.DISTRIBUTED_ENV.values()}
    env.update(XLA_FLAGS=f"{xla_flags} {COMPILE_FLAGS}".strip(), JAX_PLATFORMS="cpu")
    return env


def load(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[k] for k in z.files]


def max_abs(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert len(a) == len(b)
    return max(float(np.abs(x.astype(np.float64) - y).max()) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def devices_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("devices")
    proc = subprocess.run(
        [sys.executable, str(WORKER), "devices", str(out)],
        env=worker_env("--xla_force_host_platform_device_count=8"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, json.loads((out / "report.json").read_text())


def test_this_process_sees_one_device():
    assert jax.device_count() == 1


def test_env_trajectories_are_bit_identical_on_1_2_4_8_devices(devices_run):
    out, _ = devices_run
    ref = np.load(out / "trajectory_1.npz")
    assert ref["terminated"].any() or ref["truncated"].any()  # episodes end inside the rollout
    for d in COUNTS[1:]:
        got = np.load(out / f"trajectory_{d}.npz")
        for k in ("obs", "action", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{k} on {d} devices")
        for k in ("logp", "value"):  # per-device matmul shapes differ: XLA picks other dot kernels
            np.testing.assert_allclose(got[k], ref[k], rtol=0, atol=TOL, err_msg=f"{k} on {d} devices")


def test_parameters_agree_across_device_counts(devices_run):
    out, _ = devices_run
    ref = load(out / "params_1.npz")
    for d in COUNTS[1:]:
        assert max_abs(load(out / f"params_{d}.npz"), ref) <= TOL, d


def test_one_compile_env_axis_split_params_replicated(devices_run):
    _, report = devices_run
    for d in COUNTS:
        assert report["cache_size"][str(d)] == 1  # three iterations, one trace
        assert report["env_shard_rows"][str(d)] == [8 // d]  # 8 envs: 8 // d rows of the carry per device
        assert report["params_replicated"][str(d)]


def test_checkpoint_of_4_devices_restores_on_1_2_4_8(devices_run):
    out, report = devices_run
    for d in COUNTS:
        assert report["restore_bit_exact"][str(d)], d
        assert report["restore_shardings"][str(d)], d
    for a, b in zip(load(out / "resumed_4.npz"), load(out / "params_4.npz"), strict=True):
        np.testing.assert_array_equal(a, b)  # resume on the same device count: bit-identical
    for d in (1, 2, 8):
        assert max_abs(load(out / f"resumed_{d}.npz"), load(out / "params_4.npz")) <= TOL, d
    r = checkpoint.restore(out / "ckpt4" / "checkpoints")  # no template: onto this process's one device
    assert r.step == 1 and all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(r.params))


def test_fsdp_splits_params_and_optimizer_state(devices_run):
    _, report = devices_run
    for item in ("params", "opt_state"):
        fsdp, full = report["fsdp_bytes"][item], report["replicated_bytes"][item]
        assert sorted(fsdp) == sorted(full) and len(fsdp) == 4
        for dev in full:
            assert fsdp[dev] < 0.5 * full[dev], (item, dev, fsdp[dev], full[dev])


def test_uneven_split_names_both_numbers(devices_run):
    msg = devices_run[1]["uneven_error"]
    assert msg is not None and "num_envs=6" in msg and "4 devices" in msg and "\n" not in msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(devices_run, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    cmd = [sys.executable, str(WORKER), "process", str(tmp_path), address, "2"]
    logs = [open(tmp_path / f"process_{k}.log", "w") for k in range(2)]  # noqa: SIM115
    procs = [
        subprocess.Popen([*cmd, str(k)], env=worker_env(""), stdout=logs[k], stderr=subprocess.STDOUT) for k in range(2)
    ]
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
    tails = [(tmp_path / f"process_{k}.log").read_text()[-3000:] for k in range(2)]
    assert [p.returncode for p in procs] == [0, 0], tails
    reports = [json.loads((tmp_path / f"report_process_{k}.json").read_text()) for k in range(2)]
    for r in reports:
        assert (r["process_count"], r["device_count"], r["local_device_count"], r["mesh_size"]) == (2, 2, 1, 2)
        assert r["iteration"] == 3
    p0, p1 = load(tmp_path / "params_process_0.npz"), load(tmp_path / "params_process_1.npz")
    for a, b in zip(p0, p1, strict=True):
        np.testing.assert_array_equal(a, b)
    assert max_abs(p0, load(devices_run[0] / "params_1.npz")) <= TOL
    r = checkpoint.restore(tmp_path / "run" / "checkpoints")  # written by both processes, read by one device
    assert r.step == 3
    for a, b in zip(jax.tree.leaves(r.params), p0, strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert (tmp_path / "run" / "metrics.csv").exists() and (tmp_path / "run" / "process_1" / "metrics.csv").exists()


def test_distributed_settings_flags_override_environment():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:99", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert sharding.distributed_settings(environ={}) is None
    assert sharding.distributed_settings(environ=env) == {
        "coordinator_address": "10.0.0.1:99",
        "num_processes": 4,
        "process_id": 3,
    }
    got = sharding.distributed_settings("127.0.0.1:5", None, 0, environ=env)
    assert got == {"coordinator_address": "127.0.0.1:5", "num_processes": 4, "process_id": 0}
    with pytest.raises(ValueError, match="JAX_PROCESS_ID='x' is not an integer"):
        sharding.distributed_settings(environ={**env, "JAX_PROCESS_ID": "x"})
    with pytest.raises(ValueError, match=r"process_id=4 is outside \[0, num_processes=4\)"):
        sharding.distributed_settings(process_id=4, environ=env)


def test_train_cli_wires_distributed_flags_and_devices(monkeypatch, tmp_path):
    from jax_tx.cli import main as cli_main
    from jax_tx.ppo import run

    calls = {}
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.setdefault("init", kw))

    def fake_fit(tcfg, **kw):
        calls["fit"] = (tcfg, kw)
        raise ValueError("stop here")

    monkeypatch.setattr(run, "fit", fake_fit)
    flags = ["--coordinator-address", "127.0.0.1:7", "--num-processes", "2", "--process-id", "1"]
    assert cli_main(["train", *flags, "--devices", "2", "--log-dir", str(tmp_path / "x")]) == 2
    assert calls["init"] == {"coordinator_address": "127.0.0.1:7", "num_processes": 2, "process_id": 1}
    assert calls["fit"][0].devices == 2
    calls.clear()
    assert cli_main(["train", "--resume", str(tmp_path / "x"), "--devices", "4"]) == 2
    assert "init" not in calls and calls["fit"][1]["devices"] == 4


def test_devices_and_param_sharding_are_validated():
    from test_ppo import tiny_train_config

    from jax_tx.config import TrainConfig
    from jax_tx.ppo.trainer import Trainer

    tc = tiny_train_config("lstm")
    assert tc.devices == 0 and tc.param_sharding == "replicated"  # all devices (one here), params replicated
    assert TrainConfig.from_json(tc.replace(devices=2, param_sharding="fsdp").to_json()).devices == 2
    with pytest.raises(ConfigError, match="devices"):
        tc.replace(devices=-1)
    with pytest.raises(ConfigError, match="param_sharding"):
        tc.replace(param_sharding="zero3")
    with pytest.raises(ValueError, match=r"devices=2 but only 1 cpu device\(s\) are visible"):
        Trainer(tc.replace(devices=2))
    with pytest.raises(ValueError, match="a minibatch of 3 segments"):
        sharding.check_divisible(num_envs=4, minibatch_segments=3, num_devices=2)


def test_fsdp_spec_splits_the_largest_divisible_axis():
    from jax.sharding import PartitionSpec as P

    assert sharding.fsdp_spec((16, 64), 4) == P(None, "data")
    assert sharding.fsdp_spec((64, 16), 4) == P("data", None)
    assert sharding.fsdp_spec((6, 10), 4) == P()  # nothing divisible: replicated
    assert sharding.fsdp_spec((), 4) == P()
    assert sharding.fsdp_spec((64,), 1) == P()
