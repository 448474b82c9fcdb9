"""Subprocess side of tests/test_sharding.py (needs its own XLA_FLAGS / jax.distributed, so not in pytest's process).

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sharding_worker.py devices OUT
    python tests/sharding_worker.py process OUT 127.0.0.1:PORT 2 K        # process K of 2, one CPU device each

`devices` trains the same run on 1, 2, 4 and 8 devices and writes what the test compares into OUT:
trajectories before the first update, final params, jit cache sizes, shard shapes, a checkpoint written
on 4 devices and restored on 1, 2, 4 and 8, the fsdp placement, and the error for an uneven split.
`process` trains the same run as one of several jax.distributed processes with fit().
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_ppo import tiny_train_config  # noqa: E402

from jax_tx.ppo import sharding  # noqa: E402
from jax_tx.ppo.run import fit, restore_state, save_state  # noqa: E402
from jax_tx.ppo.trainer import Trainer  # noqa: E402

ITERATIONS = 3
COUNTS = (1, 2, 4, 8)
TRAJECTORY_FIELDS = ("obs", "action", "reward", "terminated", "truncated", "logp", "value")


def worker_config(**overrides):
    """A tiny LSTM run (memory carried), 8 envs, minibatches of 8 segments: splits evenly over 1..8 devices."""
    base = dict(num_envs=8, rollout_steps=16, total_steps=8 * 16 * ITERATIONS, ppo={"update_epochs": 2})
    return tiny_train_config("lstm", **{**base, **overrides})


def host(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def advance(trainer, state, n):
    for _ in range(n):
        state, _ = trainer.run(state)
    return state


def same_shardings(state, shardings) -> bool:
    pairs = zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(shardings), strict=True)
    return all(x.sharding.is_equivalent_to(s, x.ndim) for x, s in pairs)


def devices_mode(out: Path) -> None:
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    tc = worker_config()
    report: dict = {"cache_size": {}, "env_shard_rows": {}, "params_replicated": {}}
    trainers, first = {}, {}
    for d in COUNTS:
        tr = trainers[d] = Trainer(tc.replace(devices=d))
        state = tr.init()
        _, ro, _, _ = jax.jit(tr.collect)(state.params, state.carry, state.key)
        np.savez(out / f"trajectory_{d}.npz", **{k: np.asarray(getattr(ro.transitions, k)) for k in TRAJECTORY_FIELDS})
        report["env_shard_rows"][d] = sorted({s.data.shape[0] for s in state.carry.obs.addressable_shards})
        report["params_replicated"][d] = all(x.sharding.is_fully_replicated for x in jax.tree.leaves(state.params))
        first[d] = state = advance(tr, state, 1)
        if d == 4:
            save_state(out / "ckpt4" / "checkpoints", tc.replace(devices=4), state)
        state = advance(tr, state, ITERATIONS - 1)
        report["cache_size"][d] = tr.run._cache_size()
        np.savez(out / f"params_{d}.npz", *host(state.params))

    # checkpoint of iteration 1 on 4 devices -> every device count, then the remaining iterations
    saved = host(first[4])
    report["restore_bit_exact"], report["restore_shardings"] = {}, {}
    for d in COUNTS:
        restored = restore_state(out / "ckpt4", trainers[d], step=1)
        report["restore_bit_exact"][d] = all(
            a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(saved, host(restored), strict=True)
        )
        report["restore_shardings"][d] = same_shardings(restored, trainers[d].state_sharding)
        np.savez(out / f"resumed_{d}.npz", *host(advance(trainers[d], restored, ITERATIONS - 1).params))

    # fsdp placement only (its training run is compared in experiments/bench_devices.py: one more compile)
    fsdp = Trainer(tc.replace(devices=4, param_sharding="fsdp")).init()
    for name, st in (("fsdp", fsdp), ("replicated", first[4])):
        report[f"{name}_bytes"] = {k: sharding.bytes_per_device(getattr(st, k)) for k in ("params", "opt_state")}

    try:
        Trainer(
            tc.replace(num_envs=6, total_steps=6 * 16 * ITERATIONS, devices=4, ppo=tc.ppo.replace(num_minibatches=2))
        )
        report["uneven_error"] = None
    except ValueError as e:
        report["uneven_error"] = str(e)
    (out / "report.json").write_text(json.dumps(report, indent=1))


def process_mode(out: Path, address: str, num_processes: int, process_id: int) -> None:
    sharding.initialize_distributed(sharding.distributed_settings(address, num_processes, process_id))
    result = fit(worker_config(log_dir=str(out / "run")), progress=False, echo=lambda *_: None)
    placement = sharding.Placement.for_config(result.tcfg)
    params = sharding.to_host(result.state.params, placement)
    report = {
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "mesh_size": placement.num_devices,
        "iteration": result.iteration,
    }
    np.savez(out / f"params_process_{process_id}.npz", *jax.tree_util.tree_leaves(params))
    (out / f"report_process_{process_id}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    mode, out_dir = sys.argv[1], Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    if mode == "devices":
        devices_mode(out_dir)
    else:
        process_mode(out_dir, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
