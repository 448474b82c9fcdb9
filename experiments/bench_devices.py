"""Env steps/s and per-device memory of the jitted PPO iteration against the device count (data parallel).

For each device count D (1, 2, 4, ... up to what is visible) the same run (global batch, seed) is built with
TrainConfig(devices=D): the iteration is compiled (lower + compile timed), then timed in R rounds that visit
every D in turn (so load from other processes spreads over all counts); reported: the median seconds per
iteration and env steps/s = num_envs * rollout_steps / that. Per-device memory: bytes of the TrainState's
shards on each device (params, optimizer state, rollout carry), and XLA's per-device buffer sizes of the
compiled iteration (arguments, outputs, temporaries: `compiled.memory_analysis()`). After the timing calls
each round every count has run the same iterations: the parameters are compared with D = 1 (max-abs, by
iteration), also with param_sharding="fsdp" on the largest D (params and optimizer state split over the mesh).

On a CPU this forces D host devices (XLA_FLAGS=--xla_force_host_platform_device_count, set here before jax
starts): they share the same cores, so the figures show that the scaling path is correct (same results,
memory split as intended), not a speedup. On accelerators the same script measures real scaling; the
device kind is recorded with the figures.

    python experiments/bench_devices.py [--cpu-devices 8] [--rounds 5] [--variant trxl] [--num-envs 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-devices", type=int, default=8, help="host devices to force on the CPU backend")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--variant", default="trxl")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--rollout-steps", type=int, default=32)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "devices_bench.json"))
    return p.parse_args(argv)


ARGS = parse_args()
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.cpu_devices}"
).strip()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jax_tx.config import PPOConfig, TrainConfig, preset  # noqa: E402
from jax_tx.envs import make_env  # noqa: E402
from jax_tx.ppo import sharding  # noqa: E402
from jax_tx.ppo.trainer import Trainer  # noqa: E402

MACHINE = "2-core x86_64 CPU, shared with other jobs"


def base_config(args) -> TrainConfig:
    env = make_env("tmaze", corridor_length=6)
    d = args.d_model
    policy = preset(args.variant, env.obs_dim, env.num_actions, d_model=d, num_layers=2, num_heads=2, d_head=d // 2,
                    d_ff=2 * d, memory_len=16, actor_hidden=d, critic_hidden=d, lstm_hidden=d)  # fmt: skip
    ppo = PPOConfig(bptt_horizon=16, num_minibatches=4, update_epochs=2)
    return TrainConfig(policy=policy, ppo=ppo, env="tmaze", env_kwargs={"corridor_length": 6}, num_envs=args.num_envs,
                       rollout_steps=args.rollout_steps, total_steps=10**7, seed=0)  # fmt: skip


def timed_call(fn, state):
    t0 = time.perf_counter()
    state, metrics = fn(state)
    jax.block_until_ready((state, metrics))
    return state, time.perf_counter() - t0


def host_params(run) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(sharding.to_host(run["state"].params, run["trainer"].placement))]


def max_abs(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def memory_of(compiled) -> dict:
    m = compiled.memory_analysis()
    names = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")
    return {n: int(getattr(m, n)) for n in names} if m is not None else {}


def main(args) -> dict:
    tc = base_config(args)
    counts = [d for d in (1, 2, 4, 8, 16, 32, 64) if d <= jax.device_count()]
    setups = [(d, "replicated") for d in counts] + [(counts[-1], "fsdp")]
    runs = {}
    for d, mode in setups:
        tr = Trainer(tc.replace(devices=d, param_sharding=mode))
        state = tr.init()
        t0 = time.perf_counter()
        compiled = tr.run.lower(state).compile()
        compile_s = time.perf_counter() - t0
        state, _ = timed_call(compiled, state)
        runs[(d, mode)] = {"trainer": tr, "compiled": compiled, "state": state, "times": [], "compile_s": compile_s,
                           "xla_memory_per_device": memory_of(compiled)}  # fmt: skip
        print(f"D={d} {mode}: compiled in {compile_s:.1f}s", flush=True)
    for r in range(args.rounds):
        order = setups if r % 2 == 0 else setups[::-1]
        for key in order:
            run = runs[key]
            run["state"], dt = timed_call(run["compiled"], run["state"])
            run["times"].append(dt)
        ref = host_params(runs[(1, "replicated")])
        for run in runs.values():  # every count has now run the same iterations
            run.setdefault("diff_by_iteration", []).append(max_abs(ref, host_params(run)))
    rows = []
    for (d, mode), run in runs.items():
        st = run["state"]
        med = statistics.median(run["times"])
        state_bytes = {k: sharding.bytes_per_device(getattr(st, k)) for k in ("params", "opt_state", "carry")}
        rows.append({
            "devices": d,
            "param_sharding": mode,
            "seconds_per_iteration_median": med,
            "env_steps_per_s": tc.steps_per_iteration / med,
            "compile_s": run["compile_s"],
            "state_bytes_per_device_max": {k: max(v.values()) for k, v in state_bytes.items()},
            "xla_memory_per_device": run["xla_memory_per_device"],
            "iterations": int(st.iteration),
            "params_max_abs_diff_vs_1_device_by_iteration": dict(
                zip(range(2, 2 + args.rounds), run["diff_by_iteration"], strict=True)
            ),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    dev = jax.devices()[0]
    return {
        "what": "PPO iteration (rollout + GAE + update) vs device count, same global batch and seed",
        "note": "forced CPU host devices share the same cores: correctness of the scaling path only, not speedup"
        if dev.platform == "cpu"
        else "accelerator devices",
        "device": f"{dev.platform} {dev.device_kind}",
        "machine": MACHINE if dev.platform == "cpu" else platform.node(),
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
        "config": {
            "variant": args.variant,
            "d_model": args.d_model,
            "num_envs": tc.num_envs,
            "rollout_steps": tc.rollout_steps,
            "bptt_horizon": 16,
            "num_minibatches": 4,
            "update_epochs": 2,
            "rounds": args.rounds,
        },  # fmt: skip
        "rows": rows,
    }


if __name__ == "__main__":
    result = main(ARGS)
    Path(ARGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ARGS.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {ARGS.out}")
