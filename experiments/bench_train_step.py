"""One PPO-like training step and one rollout step, JAX (jit) vs the PyTorch twin, for every variant except slot.

For each variant in `jax_tx.config.VARIANTS` except "slot" (several action heads), one config is built and used by
both twins with identical weights (torch init, converted with `jax_tx.io.convert.torch_to_flax`):

  train step   forward in sequence mode on B segments of T steps (random obs, resets at t = 0 and with probability
               p_reset elsewhere, memory from `initial_memory`) + a scalar loss
                   L = -mean(log_softmax(logits)[a] * adv) + 0.5 * mean((value - ret)^2)
               (a, adv, ret random, the same arrays in both twins) + backward + one Adam update.
               JAX: one `jax.jit` function (jax.value_and_grad + optax.adam, params and optimizer state donated),
               timed after an explicit lower + compile (its wall time is reported as the compile time).
               torch: eager, eval mode (dropout 0), zero_grad + forward + backward + torch.optim.Adam.step.
  inference    one rollout step (T = 1) for N envs, memory carried from call to call: jitted apply vs torch no_grad.

Every variant shares d_model, num_layers, num_heads, d_ff (d_head = d_model // num_heads) and dropout 0; the XL
family uses memory_len, sliding a cache of 4 * memory_len tokens (4 tokens per step: the same span in steps); the
other variant-specific fields (AGaLiTe eta / oscillators, actor/critic head widths) keep their presets. Thread
counts are left at their defaults (XLA's CPU pool, torch.get_num_threads(); --torch-threads changes torch's).

Timing: R rounds; in each round every variant runs, in turn, JAX train / torch train / JAX inference / torch
inference (the order of the twins alternates between rounds), so load from other processes spreads over both
twins. Each measurement is the mean of k calls, k from the warm-up (about --target-s of work, 1..--max-iters).
Reported: the median over rounds, and speedup = torch ms / JAX ms (> 1: JAX faster).
Before timing, the loss of the first step is computed in both twins from the same weights and inputs (a check that
the two sides compute the same thing; recorded as loss0_abs_diff).
The cases and the timing loop are jax-tx bench's (jax_tx/cli/bench_cases.py TrainCase with one step per call,
RolloutCase; jax_tx/cli/bench.py calls_per_measurement, interleaved_rounds); this script adds its own table and
JSON (params, memory bytes per env, subnormal fraction of torch's rollout memory).

    python experiments/bench_train_step.py [--batch 64] [--steps 16] [--infer-batch 1024] [--rounds 7]
        [--d-model 64] [--layers 2] [--heads 4] [--d-ff 128] [--memory-len 16] [--variants gtrxl lstm ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402

import jax_tx  # noqa: E402
from jax_tx.cli.bench import (  # noqa: E402
    add_size_args,
    calls_per_measurement,
    cpu_model,
    interleaved_rounds,
    policy_config,
    write_json,
)
from jax_tx.cli.bench_cases import RolloutCase, TrainCase  # noqa: E402
from jax_tx.config import VARIANTS, PolicyConfig  # noqa: E402
from torch_ref.models.policy import tree_leaves  # noqa: E402

DEFAULT_VARIANTS = tuple(v for v in VARIANTS if v != "slot")
MACHINE = "2-core x86_64 CPU, shared"
TIMERS = {  # this script's names of the cases' timers
    "jax_train": ("train", "jax"),
    "torch_train": ("train", "torch_eager"),
    "jax_infer": ("rollout", "jax"),
    "torch_infer": ("rollout", "torch_eager"),
}


def make_config(variant: str, args):
    """The benchmark-size config of `variant` (one definition: jax_tx.cli.bench.policy_config)."""
    return policy_config(variant, args, args.obs_dim, args.num_actions)


def tree_bytes(tree) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))


class Bench:
    """One variant in both twins: the CLI's train case (one step per call, jax_tx.cli.bench_cases.TrainCase) and
    rollout case (RolloutCase), on the CPU, without torch.compile."""

    def __init__(self, cfg: PolicyConfig, args, seed: int = 0):
        self.cfg = cfg
        self.train = TrainCase(cfg, args.batch, args.steps, args.p_reset, args.lr, "cpu", None, seed)
        self.rollout = RolloutCase(cfg, args.infer_batch, args.p_reset, "cpu", seed)
        self.num_params = self.train.num_params
        self.memory_bytes_per_env = tree_bytes(jax_tx.initial_memory(cfg, 1))
        self.train_compile_s = self.train.compile_s["jax"]
        self.infer_compile_s = self.rollout.compile_s["jax"]
        self.jax_loss0, self.torch_loss0 = self.train.loss0["jax"], self.train.loss0["torch"]


def subnormal_fraction(tree) -> float | None:
    """Fraction of float32 memory values that are subnormal (slow on x86 unless flushed); None without memory."""
    leaves = [t.detach().numpy().ravel() for t in tree_leaves(tree) if t.is_floating_point()]
    x = np.abs(np.concatenate(leaves)) if leaves else np.zeros(0)
    if x.size == 0:
        return None
    tiny = np.finfo(np.float32).tiny
    return float(np.mean((x > 0) & (x < tiny)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=DEFAULT_VARIANTS)
    add_size_args(ap)
    ap.add_argument("--infer-batch", type=int, default=1024, help="N: envs per rollout step (T = 1)")
    ap.add_argument("--p-reset", type=float, default=0.05, help="reset probability per step (plus t = 0 in training)")
    ap.add_argument("--obs-dim", type=int, default=16)
    ap.add_argument("--num-actions", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median reported)")
    ap.add_argument("--target-s", type=float, default=0.25, help="work per measurement: calls = target / warm-up time")
    ap.add_argument("--max-iters", type=int, default=10, help="at most this many calls per measurement (mean taken)")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_step_bench.json"))
    args = ap.parse_args(argv)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)

    t_start = time.perf_counter()
    load_start = os.getloadavg()
    cfgs = {v: make_config(v, args) for v in args.variants}
    benches = {}
    for name, cfg in cfgs.items():
        benches[name] = Bench(cfg, args)
        b = benches[name]
        print(
            f"built {name:<18} params {b.num_params:>8}  compile train {b.train_compile_s:5.1f}s "
            f"infer {b.infer_compile_s:4.1f}s  loss jax {b.jax_loss0:.6f} torch {b.torch_loss0:.6f}",
            flush=True,
        )
    keys = ("jax_train", "torch_train", "jax_infer", "torch_infer")
    cases = {(name, case): getattr(b, case) for name, b in benches.items() for case in ("train", "rollout")}
    iters = calls_per_measurement(cases, args.target_s, args.max_iters)
    loads = []

    def report(r: int) -> None:
        loads.append(os.getloadavg()[0])
        print(
            f"round {r + 1}/{args.rounds} done, load {loads[-1]:.1f} ({time.perf_counter() - t_start:.0f}s)", flush=True
        )

    measured = interleaved_rounds(cases, iters, args.rounds, report)
    times = {n: {key: measured[n, case][backend] for key, (case, backend) in TIMERS.items()} for n in benches}
    calls = {n: {key: iters[(n, case), backend] for key, (case, backend) in TIMERS.items()} for n in benches}

    rows = {}
    for name, b in benches.items():
        med = {k: 1e3 * statistics.median(times[name][k]) for k in keys}
        cfg = b.cfg
        rows[name] = {
            "config": cfg.to_dict(),
            "num_params": b.num_params,
            "memory_bytes_per_env": b.memory_bytes_per_env,
            "jax_train_compile_s": b.train_compile_s,
            "jax_infer_compile_s": b.infer_compile_s,
            "loss0_jax": b.jax_loss0,
            "loss0_torch": b.torch_loss0,
            "loss0_abs_diff": abs(b.jax_loss0 - b.torch_loss0),
            **{f"{k}_ms": v for k, v in med.items()},
            "train_speedup_torch_over_jax": med["torch_train"] / med["jax_train"],
            "infer_speedup_torch_over_jax": med["torch_infer"] / med["jax_infer"],
            "calls_per_measurement": calls[name],
            "torch_infer_memory_subnormal_fraction": subnormal_fraction(b.rollout.mem["torch"]),
            "all_rounds_ms": {k: [1e3 * t for t in times[name][k]] for k in keys},
        }

    print(
        f"\n{MACHINE} ({cpu_model()}); jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )
    print(
        f"train: B={args.batch} x T={args.steps}; inference: N={args.infer_batch} x T=1; d_model {args.d_model}, "
        f"{args.layers} layers, {args.heads} heads, d_ff {args.d_ff}, memory {args.memory_len}; "
        f"median of {args.rounds} interleaved rounds "
        f"(each the mean of 1-{args.max_iters} calls, ~{args.target_s}s of work)"
    )
    head = f"{'variant':<18}{'params':>8}{'compile s':>10}{'train jax ms':>13}{'torch ms':>10}{'torch/jax':>10}"
    print(head + f"{'infer jax ms':>13}{'torch ms':>10}{'torch/jax':>10}")
    for name, r in rows.items():
        print(
            f"{name:<18}{r['num_params']:>8}{r['jax_train_compile_s']:>10.1f}"
            f"{r['jax_train_ms']:>13.2f}{r['torch_train_ms']:>10.2f}{r['train_speedup_torch_over_jax']:>10.2f}"
            f"{r['jax_infer_ms']:>13.2f}{r['torch_infer_ms']:>10.2f}{r['infer_speedup_torch_over_jax']:>10.2f}"
        )
    total_s = time.perf_counter() - t_start
    print(f"total {total_s:.0f}s")

    result = {
        "what": "one PPO-like train step (forward over [B,T] + loss + backward + Adam) and one rollout step "
        "(T=1, memory carried), JAX jit vs torch eager, same weights; see the script's docstring",
        "settings": vars(args) | {"variants": list(args.variants), "loss": "-mean(logp[a]*adv) + 0.5*mean((v-ret)^2)"},
        "machine": {
            "description": MACHINE,
            "cpu": cpu_model(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": getattr(jax.lib, "__version__", None) or jax.__version__,
            "optax": optax.__version__,
            "torch": torch.__version__,
            "jax_device": str(jax.devices()[0]),
            "torch_threads": torch.get_num_threads(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "loadavg_1min_after_each_round": loads,
            "note": "wall-clock medians on a shared machine (other jobs add noise); compare ratios, not absolutes",
        },
        "total_wall_s": total_s,
        "rows": rows,
    }
    out = Path(args.out)
    write_json(out, result)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
