"""`jax-tx bench`: JAX (jit) vs PyTorch (eager, torch.compile) per variant, on this machine; table, JSON, PNG.

    jax-tx bench                                        # every single-head variant, benchmark sizes
    jax-tx bench --variants trxl gtrxl --json OUT.json  # OUT.json: the contract below; OUT.details.json: all
    jax-tx bench --quick --variants trxl                # tiny sizes, a few seconds per variant
    jax-tx bench --size large                           # 256 segments x d_model 256 (issue 17's size)

Per variant (cases in jax_tx/cli/bench_cases.py; the twins share weights):
  train     forward over B segments x T steps + loss + backward + Adam: jax jit | torch eager | torch.compile
            (compile wall times reported apart, never inside a timing); --train-steps-per-call K steps, each on
            its own minibatch, per timed call (jax: one jitted lax.scan, as the PPO update runs its minibatches);
            reported per step (call time / K)
  rollout   one policy step (T = 1) for N envs, memory carried: jax jit | torch eager
  e2e       env steps/s of whole PPO iterations on --e2e-env (rollout + GAE + segment BPTT update):
            jax_tx.ppo.Trainer vs torch_ref.ppo_loop.TorchPPO with the same TrainConfig; the Trainer runs
            --e2e-iterations-per-call N iterations per jitted call (as the recipes do), reported per iteration
Sizes: --size default (the flags' defaults) | large (--batch 256 --d-model 256 --d-ff 512; the rest, e2e
included, as default); a size flag given explicitly wins over the preset.
Timing: --rounds interleaved rounds; in each, every case of every variant runs once per backend, the backend
order reversed every other round, each measurement the mean of 1..--max-iters calls (about --target-s of work).
speedup = median torch time / median JAX time (> 1: JAX faster).

JSON contract (--json): {"machine": {...}, "results": {variant: {"train_speedup_vs_torch_eager": x,
"train_speedup_vs_torch_compile": x, "rollout_speedup_vs_torch_eager": x, "end_to_end_speedup_vs_torch_loop": x}}}
plus "config": {"size", "train_steps_per_call", "e2e_iterations_per_call", and the sizes} (what was timed).
Threads: XLA's CPU pool (all cores) and torch.get_num_threads() (--torch-threads), both stated in "machine".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SPEEDUPS = {
    "train_speedup_vs_torch_eager": ("train", "torch_eager"),
    "train_speedup_vs_torch_compile": ("train", "torch_compile"),
    "rollout_speedup_vs_torch_eager": ("rollout", "torch_eager"),
    "end_to_end_speedup_vs_torch_loop": ("e2e", "torch_loop"),
}
QUICK = dict(
    batch=4,
    steps=4,
    infer_batch=8,
    d_model=16,
    layers=1,
    heads=2,
    d_ff=16,
    memory_len=4,
    rounds=2,
    e2e_envs=4,
    e2e_rollout=8,
    e2e_horizon=4,
    e2e_minibatches=1,
    e2e_epochs=1,
    target_s=0.0,
    max_iters=1,
    compile_backend="eager",
)
SIZES = {"default": {}, "large": dict(batch=256, d_model=256, d_ff=512)}  # default: the parser's defaults
CONFIG_KEYS = ("size", "train_steps_per_call", "e2e_iterations_per_call", "batch", "steps", "infer_batch", "d_model")
CONFIG_KEYS += ("layers", "heads", "d_ff", "memory_len", "e2e_env", "e2e_envs", "e2e_rollout", "e2e_horizon")
CONFIG_KEYS += ("e2e_minibatches", "e2e_epochs", "quick")


def add_size_args(p: argparse.ArgumentParser) -> None:
    """The train-step and model size flags (shared with experiments/bench_train_step.py and bench_levers.py)."""
    p.add_argument("--batch", type=int, default=64, help="B: segments per train step")
    p.add_argument("--steps", type=int, default=16, help="T: steps per segment")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=128)
    p.add_argument("--memory-len", type=int, default=16)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jax-tx bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", nargs="+", default=None, help="default: every variant except slot")
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes, torch.compile backend 'eager' (for tests / smoke runs)"
    )
    p.add_argument("--size", default="default", choices=tuple(SIZES), help="size preset (explicit flags win)")
    add_size_args(p)
    p.add_argument("--train-steps-per-call", type=int, default=4, help="K: Adam steps per timed train call")
    p.add_argument("--infer-batch", type=int, default=1024, help="N: envs per rollout step")
    p.add_argument("--p-reset", type=float, default=0.05)
    p.add_argument("--e2e-env", default="tmaze", choices=("tmaze", "repeat_previous"))
    p.add_argument("--e2e-envs", type=int, default=64, help="envs in the end-to-end PPO run")
    p.add_argument("--e2e-rollout", type=int, default=64, help="rollout steps per PPO iteration")
    p.add_argument("--e2e-horizon", type=int, default=16, help="BPTT horizon of the PPO update")
    p.add_argument("--e2e-minibatches", type=int, default=4)
    p.add_argument("--e2e-epochs", type=int, default=4)
    p.add_argument("--e2e-iterations-per-call", type=int, default=5, help="PPO iterations per jitted Trainer call")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--target-s", type=float, default=0.25, help="work per measurement")
    p.add_argument("--max-iters", type=int, default=10, help="calls per measurement at most")
    p.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--torch-device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend; 'none' skips it")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device peak, for MFU (0: not reported)")
    p.add_argument("--json", default="experiments/results/bench.json", help="contract JSON (details beside it)")
    p.add_argument("--png", default=None, help="speedup chart (default: the JSON path with .png)")
    return p


def resolve(args: argparse.Namespace, argv: list[str]) -> argparse.Namespace:
    """--size, then --quick, fill the sizes the user did not give explicitly (--quick goes with --size default)."""
    if args.quick and args.size != "default":
        raise SystemExit(f"jax-tx bench: --quick sets tiny sizes; it does not go with --size {args.size}")
    given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv if a.startswith("--")}
    for k, v in (SIZES[args.size] | (QUICK if args.quick else {})).items():
        if k not in given:
            setattr(args, k, v)
    return args


def policy_config(variant: str, args, obs_dim: int, num_actions: int):
    from jax_tx.config import preset

    over = dict(
        d_model=args.d_model,
        num_layers=args.layers,
        num_heads=args.heads,
        d_head=0,
        d_ff=args.d_ff,
        dropout=0.0,
        attn_dropout=0.0,
        lstm_hidden=0,
    )
    if variant in ("gtrxl", "trxl", "trxl_nvidia"):
        over["memory_len"] = args.memory_len
    if variant == "sliding":
        over["max_cache_size"] = 4 * args.memory_len
    return preset(variant, obs_dim, num_actions, **over)


def train_config(variant: str, args):
    from jax_tx.config import PPOConfig, TrainConfig
    from jax_tx.envs import make_env

    env = make_env(args.e2e_env)
    ppo = PPOConfig(bptt_horizon=args.e2e_horizon, num_minibatches=args.e2e_minibatches, update_epochs=args.e2e_epochs)
    return TrainConfig(
        policy=policy_config(variant, args, env.obs_dim, env.num_actions),
        ppo=ppo,
        env=args.e2e_env,
        num_envs=args.e2e_envs,
        rollout_steps=args.e2e_rollout,
        total_steps=10**9,
        iterations_per_call=args.e2e_iterations_per_call,
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(torch_device: str) -> dict:
    import jax
    import jaxlib
    import torch

    dev = jax.devices()[0]
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "torch": torch.__version__,
        "jax_device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "torch_device": torch_device if torch_device == "cpu" else torch.cuda.get_device_name(),
        "torch_threads": torch.get_num_threads(),
        "xla_threads": "XLA CPU pool: all cores" if dev.platform == "cpu" else "n/a",
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "loadavg_start": os.getloadavg(),
    }


def calls_per_measurement(cases: dict, target_s: float, max_iters: int) -> dict:
    """Warm every timer up once; calls per measurement = round(target_s / second call's time), in 1..max_iters."""
    iters = {}
    for key, case in cases.items():
        for name, fn in case.timers.items():
            fn(1)
            iters[key, name] = int(min(max_iters, max(1, round(target_s / max(fn(1), 1e-9)))))
    return iters


def interleaved_rounds(cases: dict, iters: dict, rounds: int, on_round=None) -> dict:
    """times {key: {name: [seconds per unit, one per round]}}; each round runs every case's timers in turn,
    the timers of a case in reverse order every other round; on_round(r) after round r (0-based)."""
    times = {key: {name: [] for name in case.timers} for key, case in cases.items()}
    for r in range(rounds):
        for key, case in cases.items():
            order = list(case.timers.items())
            for name, fn in order[::-1] if r % 2 else order:
                times[key][name].append(fn(iters[key, name]))
        if on_round is not None:
            on_round(r)
    return times


def measure(cases: dict, args) -> dict:
    """cases {(variant, case): obj with .timers} -> times {(variant, case): {backend: [s per unit per round]}}."""
    iters = calls_per_measurement(cases, args.target_s, args.max_iters)

    def report(r: int) -> None:
        print(f"round {r + 1}/{args.rounds}, load {os.getloadavg()[0]:.1f}", flush=True)

    return interleaved_rounds(cases, iters, args.rounds, report)


def summarise(variants, cases, times, args) -> tuple[dict, dict]:
    results, details = {}, {}
    for v in variants:
        med = {c: {b: statistics.median(ts) for b, ts in times[v, c].items()} for c in ("train", "rollout", "e2e")}
        res = {}
        for key, (case, backend) in SPEEDUPS.items():
            res[key] = med[case][backend] / med[case]["jax"] if backend in med[case] else math.nan
        results[v] = res
        e2e = cases[v, "e2e"]
        train = cases[v, "train"]
        gflops = train.flops / med["train"]["jax"] / 1e9 if train.flops else None
        details[v] = {
            "median_ms": {c: {b: 1e3 * t for b, t in m.items()} for c, m in med.items()},
            "compile_s": {c: cases[v, c].compile_s for c in ("train", "rollout", "e2e")},
            "env_steps_per_s": {b: e2e.steps_per_iteration / t for b, t in med["e2e"].items()},
            "train_jax_gflops_per_s": gflops,
            "train_torch_eager_gflops_per_s": train.flops / med["train"]["torch_eager"] / 1e9 if train.flops else None,
            "train_jax_mfu": gflops / (1e3 * args.peak_tflops) if gflops and args.peak_tflops else None,
            "loss0": train.loss0,
            "e2e_jax_iterations_done": int(e2e.state.iteration),  # all calls, warm-up included
            "all_rounds_ms": {c: {b: [1e3 * t for t in ts] for b, ts in times[v, c].items()} for c in med},
        }
    return results, details


def print_table(results: dict, details: dict, machine: dict) -> None:
    print(
        f"\n{machine['cpu']} ({machine['cpu_count']} cores); jax {machine['jax']} on {machine['jax_device']}, "
        f"torch {machine['torch']} on {machine['torch_device']} ({machine['torch_threads']} threads); "
        f"load {machine['loadavg_start'][0]:.1f} -> {machine['loadavg_end'][0]:.1f}"
    )
    head = f"{'variant':<18}{'train jax ms':>13}{'eager':>8}{'compile':>9}{'rollout jax ms':>15}{'eager':>8}"
    print(head + f"{'e2e jax sps':>12}{'torch sps':>10}   speedups (eager, compile, rollout, e2e)")
    for v, r in results.items():
        ms, sps = details[v]["median_ms"], details[v]["env_steps_per_s"]
        sp = "  ".join(f"{x:5.2f}" for x in r.values())
        print(
            f"{v:<18}{ms['train']['jax']:>13.2f}{ms['train']['torch_eager']:>8.2f}"
            f"{ms['train'].get('torch_compile', math.nan):>9.2f}{ms['rollout']['jax']:>15.2f}"
            f"{ms['rollout']['torch_eager']:>8.2f}{sps['jax']:>12.0f}{sps['torch_loop']:>10.0f}   {sp}"
        )


def plot(results: dict, png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(results) + 2), 3.6))
    width = 0.8 / len(SPEEDUPS)
    for i, key in enumerate(SPEEDUPS):
        xs = [j + i * width for j in range(len(results))]
        ax.bar(xs, [results[v][key] for v in results], width, label=key.replace("_speedup_vs_", " vs "))
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(results))], list(results))
    ax.set_ylabel("torch time / JAX time")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = resolve(build_parser().parse_args(argv), argv)
    from jax_tx.config import VARIANTS

    singles = [v for v in VARIANTS if v != "slot"]
    variants = args.variants or singles
    unknown = [v for v in variants if v not in singles]
    if unknown:
        print(f"jax-tx bench: unknown or multi-head variant(s) {unknown}; choose from {singles}", file=sys.stderr)
        return 2
    import torch

    from jax_tx.cli.bench_cases import EndToEnd, RolloutCase, TrainCase
    from jax_tx.envs import make_env

    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.torch_device == "auto" else args.torch_device
    backend = None if args.compile_backend == "none" else args.compile_backend
    machine = machine_info(device)
    env = make_env(args.e2e_env)
    t0, cases = time.perf_counter(), {}
    for v in variants:
        cfg = policy_config(v, args, env.obs_dim, env.num_actions)
        k = args.train_steps_per_call
        cases[v, "train"] = TrainCase(cfg, args.batch, args.steps, args.p_reset, 3e-4, device, backend, 0, k)
        cases[v, "rollout"] = RolloutCase(cfg, args.infer_batch, args.p_reset, device)
        cases[v, "e2e"] = EndToEnd(train_config(v, args), device)
        print(f"built {v} ({time.perf_counter() - t0:.0f}s)", flush=True)
    times = measure(cases, args)
    machine["loadavg_end"] = os.getloadavg()
    results, details = summarise(variants, cases, times, args)
    print_table(results, details, machine)
    print(
        f"size {args.size} (B {args.batch} x T {args.steps}, d_model {args.d_model}); train: "
        f"{args.train_steps_per_call} steps per call, ms per step; e2e: jax {args.e2e_iterations_per_call} "
        "iterations per call, sps per iteration"
    )
    out = Path(args.json)
    config = {k: getattr(args, k) for k in CONFIG_KEYS}
    write_json(out, {"machine": machine, "config": config, "results": results})
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "png")} | {"variants": variants}
    write_json(
        out.with_suffix(".details.json"),
        {"machine": machine, "config": config, "settings": settings, "details": details},
    )
    png = Path(args.png) if args.png else out.with_suffix(".png")
    plot(results, png, f"{machine['cpu']}, torch {machine['torch_threads']} threads")
    print(f"wrote {out}, {out.with_suffix('.details.json')}, {png} ({time.perf_counter() - t0:.0f}s)")
    return 0
