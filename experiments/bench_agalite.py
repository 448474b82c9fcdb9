"""AGaLiTe presets vs GTrXL (memory 64, same width): memory-state bytes per env and inference time per step.

For each AGaLiTe preset (agalite, agalite_fast, agalite_optimized, agalite_hybrid) and a GTrXL baseline with
memory_len 64 and the same d_model, layers, heads, d_head and d_ff as the AGaLiTe presets, at batch B and T = 1
(one rollout step, memory carried):

  state bytes / env   sum of initial_memory(cfg, 1) leaf bytes (what a rollout keeps per environment)
  flops / env         XLA's cost analysis of the jitted step, divided by B (noise-free)
  jax ms / step       jitted policy apply (encoder + core + heads), median of R rounds
  torch ms / step     the torch twin, eager, no_grad, median of R rounds
and each ratio to GTrXL. Rounds interleave the models, so that load from other processes spreads evenly.
The AGaLiTe paper claims inference at least 40% cheaper and memory more than 50% smaller than GTrXL.

    python experiments/bench_agalite.py [--batch 1024] [--rounds 7] [--iters 5] [--out experiments/results/...]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import jax_tx  # noqa: E402
import torch_ref  # noqa: E402
from jax_tx.config import preset  # noqa: E402
from jax_tx.io import convert  # noqa: E402

AGALITE = ("agalite", "agalite_fast", "agalite_optimized", "agalite_hybrid")


def configs(args) -> dict:
    over = {} if args.layers is None else {"num_layers": args.layers}
    cfgs = {v: preset(v, args.obs_dim, args.num_actions, **over) for v in AGALITE}
    ref = cfgs["agalite"]
    cfgs["gtrxl_mem64"] = preset(
        "gtrxl",
        args.obs_dim,
        args.num_actions,
        d_model=ref.d_model,
        num_layers=ref.num_layers,
        num_heads=ref.num_heads,
        d_head=ref.head_dim,
        d_ff=ref.d_ff,
        memory_len=64,
    )
    return cfgs


def state_bytes(memory) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(memory))


class Runner:
    """One model in both twins with carried memory; each call times `iters` steps."""

    def __init__(self, cfg, args, seed: int = 0):
        torch.manual_seed(seed)
        self.tmodel = torch_ref.make_policy(cfg)
        params = convert.torch_to_flax(self.tmodel.state_dict(), cfg)
        rng = np.random.default_rng(seed)
        obs = rng.normal(size=(args.batch, 1, cfg.obs_dim)).astype(np.float32)
        reset = np.zeros((args.batch, 1), bool)
        model = jax_tx.make_policy(cfg)
        self.step = jax.jit(lambda p, o, r, m: model.apply(p, o, r, m))
        self.params, self.obs, self.reset = params, jnp.asarray(obs), jnp.asarray(reset)
        self.mem = jax_tx.initial_memory(cfg, args.batch)
        compiled = self.step.lower(self.params, self.obs, self.reset, self.mem).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        self.flops_per_env = float(cost.get("flops", float("nan"))) / args.batch
        self.t_obs, self.t_reset = torch.as_tensor(obs), torch.as_tensor(reset)
        self.tmem = torch_ref.initial_memory(cfg, args.batch)
        self.iters = args.iters
        self.time_jax(), self.time_torch()  # warm up (compile, allocator)

    def time_jax(self) -> float:
        start = time.perf_counter()
        for _ in range(self.iters):
            out, self.mem = self.step(self.params, self.obs, self.reset, self.mem)
        jax.block_until_ready((out, self.mem))
        return (time.perf_counter() - start) / self.iters

    def time_torch(self) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(self.iters):
                _, self.tmem = self.tmodel(self.t_obs, self.t_reset, self.tmem)
        return (time.perf_counter() - start) / self.iters


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median reported)")
    ap.add_argument("--iters", type=int, default=5, help="steps per round")
    ap.add_argument("--layers", type=int, default=None, help="override num_layers of every model (default: presets)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for XLA and torch (1: stable on shared CPUs)")
    ap.add_argument("--obs-dim", type=int, default=64)
    ap.add_argument("--num-actions", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "agalite_bench.json"))
    args = ap.parse_args(argv)
    if args.threads > 0:  # read when the XLA backend starts (first use), so before any jax computation
        eigen = "true" if args.threads > 1 else "false"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen={eigen}"
        torch.set_num_threads(args.threads)

    cfgs = configs(args)
    runners = {name: Runner(cfg, args) for name, cfg in cfgs.items()}
    times: dict[str, dict[str, list[float]]] = {n: {"jax": [], "torch": []} for n in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            times[name]["jax"].append(run.time_jax())
            times[name]["torch"].append(run.time_torch())

    rows = {}
    for name, cfg in cfgs.items():
        rows[name] = {
            "config": {
                k: getattr(cfg, k)
                for k in ("d_model", "num_layers", "num_heads", "d_ff", "eta", "num_oscillators", "agalite_mode")
            }
            | {"d_head": cfg.head_dim, "memory_len": cfg.memory_len, "lstm_width": cfg.lstm_width},
            "state_bytes_per_env": state_bytes(jax_tx.initial_memory(cfg, 1)),
            "flops_per_env": runners[name].flops_per_env,
            "jax_ms_per_step": 1e3 * statistics.median(times[name]["jax"]),
            "torch_ms_per_step": 1e3 * statistics.median(times[name]["torch"]),
            "jax_ms_all_rounds": [1e3 * t for t in times[name]["jax"]],
            "torch_ms_all_rounds": [1e3 * t for t in times[name]["torch"]],
        }
    base = rows["gtrxl_mem64"]
    for row in rows.values():
        for key in ("state_bytes_per_env", "flops_per_env", "jax_ms_per_step", "torch_ms_per_step"):
            row[f"{key}_vs_gtrxl"] = row[key] / base[key]

    print(f"batch {args.batch}, T = 1, {args.rounds} rounds x {args.iters} steps; device {jax.devices()[0]}")
    head = f"{'model':<20}{'state B/env':>12}{'x GTrXL':>9}{'MFLOP/env':>11}{'x GTrXL':>9}"
    print(head + f"{'jax ms':>9}{'x GTrXL':>9}{'torch ms':>10}{'x GTrXL':>9}")
    for name, r in rows.items():
        print(
            f"{name:<20}{r['state_bytes_per_env']:>12}{r['state_bytes_per_env_vs_gtrxl']:>9.2f}"
            f"{r['flops_per_env'] / 1e6:>11.2f}{r['flops_per_env_vs_gtrxl']:>9.2f}"
            f"{r['jax_ms_per_step']:>9.2f}{r['jax_ms_per_step_vs_gtrxl']:>9.2f}"
            f"{r['torch_ms_per_step']:>10.2f}{r['torch_ms_per_step_vs_gtrxl']:>9.2f}"
        )
    result = {
        "settings": vars(args) | {"T": 1},
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "jax_device": str(jax.devices()[0]),
            "jax": jax.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "note": "timings are wall-clock medians; on a shared machine other jobs add noise",
        },
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
