"""Slot transformer vs the flat-concatenation LSTM on slot_select: the plan's training comparison.

For each slot count N and seed, both policies train with PPO from the recipes
experiments/recipes/slot_n{N}__{slot,lstm}.json (the same code path as `jax-tx train --recipe ...`,
with total_steps replaced by this script's budget). Per (N, model) it reports

  final return     mean (± std) over seeds of the training episode return over the last 10% of iterations
  greedy eval      (--eval) mean over seeds of a greedy evaluation return (256 episodes) after training
  steps to thr     env steps until the training return (3-iteration running mean) first reaches --threshold
  SPS              training env steps per second, compile excluded (both models interleaved, seed by seed)
  params           parameter count
  peak memory      XLA's compiled memory_analysis of one jitted training iteration (args + out + temp - alias)

and, for the slot policy trained at --transfer-from slots, its greedy return at other slot counts with the same
weights. Writes OUT/results.json, OUT/curves.json, OUT/RESULTS.md (the table) and OUT/curves_n{N}.png.

    python experiments/slot_compare.py --slots 3 10 25 50 --seeds 0 1 2 --budget 3:61440 10:61440 25:30720 50:30720
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jax_tx.cli.train import build_parser, config_from_args  # noqa: E402
from jax_tx.envs import make_env  # noqa: E402
from jax_tx.models.policy import make_policy  # noqa: E402
from jax_tx.ppo import heads  # noqa: E402
from jax_tx.ppo.evaluate import run_episodes  # noqa: E402
from jax_tx.ppo.trainer import Trainer  # noqa: E402

HERE = Path(__file__).resolve().parent
MODELS = ("slot", "lstm")


def recipe_config(n: int, model: str, total_steps: int, memory: bool = False):
    name = f"slot_{'memory_' if memory else ''}n{n}__{model}.json"
    args = build_parser().parse_args(["--recipe", str(HERE / "recipes" / name), "--total-steps", str(total_steps)])
    return config_from_args(args)


def compile_run(trainer: Trainer):
    """(trainer.run compiled ahead of time, peak bytes): XLA's memory_analysis, args + out + temp - alias."""
    compiled = trainer.run.lower(trainer.init(0)).compile()
    m = compiled.memory_analysis()
    peak = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return compiled, int(peak)


def train_one(trainer: Trainer, run, seed: int, evaluate: bool) -> dict:
    """Train from seed with the compiled `run`; per-iteration (env steps, return), SPS (no compile inside)."""
    tc = trainer.tcfg
    state = trainer.init(seed)
    calls = tc.num_iterations // tc.iterations_per_call
    returns, t_run, steps_run = [], 0.0, 0
    for _ in range(calls):
        t0 = time.perf_counter()
        state, metrics = run(state)
        ret = np.asarray(jax.block_until_ready(metrics["episode_return"]))
        t_run += time.perf_counter() - t0
        steps_run += tc.iterations_per_call * tc.steps_per_iteration
        returns.extend(float(x) for x in ret)
    out = {
        "steps": [(i + 1) * tc.steps_per_iteration for i in range(len(returns))],
        "returns": returns,
        "sps": steps_run / t_run if t_run > 0 else math.nan,
        "eval_return": math.nan,
        "params": state.params,
    }
    if evaluate:
        ev = run_episodes(trainer.model, state.params, tc.policy, trainer.env, 256, jax.random.PRNGKey(seed + 100))
        out["eval_return"] = float(ev["return"][ev["finished"]].mean())
    return out


def random_return(env, episodes: int = 256, seed: int = 0) -> float:
    """Mean return of the uniform policy over the legal actions (the floor the table is read against)."""
    zeros = tuple(jnp.zeros((episodes, d)) for d in env.action_dims)

    def step(c, k):
        state, ret, done = c
        k_act, k_env = jax.random.split(k)
        action, _ = heads.select_actions(k_act, zeros, jax.vmap(env.action_mask)(state))
        _, state, _, term, trunc, info = jax.vmap(env.step)(jax.random.split(k_env, episodes), state, action)
        first = (term | trunc) & ~done
        return (state, jnp.where(first, info["episode_return"], ret), done | term | trunc), None

    _, state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(seed), episodes))
    init = (state, jnp.zeros(episodes), jnp.zeros(episodes, bool))
    (_, ret, _), _ = jax.lax.scan(step, init, jax.random.split(jax.random.PRNGKey(seed + 1), env.max_steps))
    return float(ret.mean())


def steps_to(steps, returns, threshold: float) -> float:
    r = np.asarray(returns, float)
    smooth = np.convolve(np.nan_to_num(r, nan=0.0), np.ones(3) / 3, mode="full")[: len(r)]
    hit = np.flatnonzero(smooth >= threshold)
    return float(steps[hit[0]]) if hit.size else math.nan


def transfer(trained: list, counts: list[int], seeds: list[int]) -> dict:
    """Greedy return of the slot policies trained at n_from, evaluated at other slot counts (same weights)."""
    out = {}
    for n in counts:
        tc = trained[0][1]
        env = make_env(tc.env, **{**tc.env_kwargs, "num_slots": n, "min_active": min(tc.env_kwargs["min_active"], n)})
        cfg = trained[0][1].policy.replace(obs_dim=env.obs_dim)
        model = make_policy(cfg)
        rets = []
        for seed, (params, _) in zip(seeds, trained, strict=True):
            ev = run_episodes(model, params, cfg, env, 256, jax.random.PRNGKey(seed + 200))
            rets.append(float(ev["return"][ev["finished"]].mean()))
        out[str(n)] = {"greedy_return_mean": float(np.mean(rets)), "per_seed": rets}
    return out


def plot(curves: dict, n: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for model, runs in curves.items():
        steps = np.asarray(runs[0]["steps"])
        r = np.asarray([np.nan_to_num(x["returns"], nan=0.0) for x in runs])
        ax.plot(steps, r.mean(0), label=f"{model} (mean of {len(runs)} seeds)")
        ax.fill_between(steps, r.min(0), r.max(0), alpha=0.2)
    ax.set(xlabel="env steps", ylabel="training episode return", title=f"slot_select, {n} slots", ylim=(0, 1))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def fmt(x: float) -> str:
    return f"{x:.3f}" if np.isfinite(x) else "not run"


def table(results: dict, threshold: float) -> str:
    lines = [
        f"| slots | model | final return (train, last 10%) | greedy eval return | env steps to {threshold} | SPS "
        "| params "
        "| peak memory (MiB) | budget (env steps) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, row in results.items():
        lines.append(f"| {n} | uniform over legal actions | {row['random']['eval_return_mean']:.3f} | | | | | | |")
        for model, r in row.items():
            if model == "random":
                continue
            thr = r["steps_to_threshold"]
            reached = (
                f"{int(np.nanmean(thr)):,} ({np.isfinite(thr).sum()}/{len(thr)} seeds)"
                if np.isfinite(thr).any()
                else "not reached"
            )
            lines.append(
                f"| {n} | {model} | {r['train_return_mean']:.3f} ± {r['train_return_std']:.3f} | "
                f"{fmt(r['eval_return_mean'])} | {reached} | {r['sps_mean']:,.0f} | {r['params']:,} | "
                f"{r['peak_bytes'] / 2**20:.1f} | {r['budget']:,} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slots", type=int, nargs="+", default=[3, 10, 25, 50])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", nargs="+", default=["3:61440", "10:61440", "25:30720", "50:30720"],
                   help="N:env_steps per run")  # fmt: skip
    p.add_argument("--threshold", type=float, default=0.75)
    p.add_argument("--eval", action="store_true", help="also a greedy evaluation (256 episodes) after each run")
    p.add_argument("--memory", action="store_true", help="the memory version (recipes slot_memory_n<N>__*.json)")
    p.add_argument("--transfer-from", type=int, default=10)
    p.add_argument("--transfer-to", type=int, nargs="+", default=[3, 10, 50])
    p.add_argument("--out", default=str(HERE / "results" / "slot_compare"))
    p.add_argument("--retable", action="store_true", help="recompute steps-to-threshold and RESULTS.md from OUT")
    args = p.parse_args(argv)
    if args.retable:
        return retable(Path(args.out), args.threshold)
    budget = {int(k): int(v) for k, v in (b.split(":") for b in args.budget)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, curves, transfer_out = {}, {}, {}
    t_start = time.perf_counter()
    for n in args.slots:
        trainers = {m: Trainer(recipe_config(n, m, budget[n], args.memory)) for m in MODELS}
        compiled = {m: compile_run(trainers[m]) for m in MODELS}
        runs = {m: [] for m in MODELS}
        for seed in args.seeds:  # interleaved: both models share the machine's load seed by seed
            for m in MODELS:
                runs[m].append(train_one(trainers[m], compiled[m][0], seed, args.eval))
                r = runs[m][-1]
                print(f"N={n} {m} seed={seed}: last return {r['returns'][-1]:.3f} eval {r['eval_return']:.3f} "
                      f"sps {r['sps']:.0f}", flush=True)  # fmt: skip
        results[str(n)] = {"random": {"eval_return_mean": random_return(trainers["slot"].env)}}
        for m in MODELS:
            rs, tr = runs[m], trainers[m]
            tail = max(1, len(rs[0]["returns"]) // 10)
            results[str(n)][m] = {
                "eval_return_mean": float(np.mean([r["eval_return"] for r in rs])),
                "eval_return_std": float(np.std([r["eval_return"] for r in rs])),
                "train_return_mean": float(np.mean([np.nanmean(r["returns"][-tail:]) for r in rs])),
                "train_return_std": float(np.std([np.nanmean(r["returns"][-tail:]) for r in rs])),
                "steps_to_threshold": [steps_to(r["steps"], r["returns"], args.threshold) for r in rs],
                "sps_mean": float(np.mean([r["sps"] for r in rs])),
                "sps_per_seed": [r["sps"] for r in rs],
                "params": int(sum(x.size for x in jax.tree_util.tree_leaves(rs[0]["params"]))),
                "peak_bytes": compiled[m][1],
                "budget": tr.tcfg.num_iterations * tr.tcfg.steps_per_iteration,
            }
        curves[str(n)] = {m: [{"steps": r["steps"], "returns": r["returns"]} for r in runs[m]] for m in MODELS}
        plot(curves[str(n)], n, out / f"curves_n{n}.png")
        write(out, args, results, curves, transfer_out, t_start)
        if n == args.transfer_from:
            trained = [(r["params"], trainers["slot"].tcfg) for r in runs["slot"]]
            transfer_out = {
                "trained_at": n,
                "evaluated_at": transfer(trained, args.transfer_to, args.seeds),
            }
    write(out, args, results, curves, transfer_out, t_start)
    return 0


def retable(out: Path, threshold: float) -> int:
    """Rewrite OUT/results.json and RESULTS.md for another threshold from OUT/curves.json (no training)."""
    report = json.loads((out / "results.json").read_text())
    curves = json.loads((out / "curves.json").read_text())
    for n, row in report["results"].items():
        for m in MODELS:
            runs = curves[n][m]
            row[m]["steps_to_threshold"] = [steps_to(r["steps"], r["returns"], threshold) for r in runs]
    args = argparse.Namespace(**{**report["settings"], "threshold": threshold})
    t_start = time.perf_counter() - report["wall_s"]
    write(out, args, report["results"], curves, report["transfer"], t_start)
    return 0


def write(out: Path, args, results: dict, curves: dict, transfer_out: dict, t_start: float) -> None:
    """results.json, curves.json and RESULTS.md for what has run so far."""
    report = {
        "machine": {"platform": platform.platform(), "jax_backend": jax.default_backend(), "cpus": jax.device_count()},
        "versions": {"jax": jax.__version__},
        "settings": vars(args),
        "wall_s": time.perf_counter() - t_start,
        "results": results,
        "transfer": transfer_out,
    }
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "curves.json").write_text(json.dumps(curves) + "\n")
    md = [
        "# slot_select: slot transformer vs flat LSTM (generated by experiments/slot_compare.py)",
        "",
        f"Machine: {report['machine']['platform']}, backend {report['machine']['jax_backend']}, jax {jax.__version__}; "
        f"seeds {args.seeds}; threshold {args.threshold}; wall {report['wall_s']:.0f} s.",
        "",
        table(results, args.threshold),
    ]
    if transfer_out:
        md += ["", f"Slot policy trained at {transfer_out['trained_at']} slots, same weights, greedy return:", ""]
        md += ["| slots | greedy return (mean over seeds) | per seed |", "|---|---|---|"]
        for k, v in transfer_out["evaluated_at"].items():
            md.append(f"| {k} | {v['greedy_return_mean']:.3f} | {', '.join(f'{x:.3f}' for x in v['per_seed'])} |")
    (out / "RESULTS.md").write_text("\n".join(md) + "\n")
    print("\n".join(md), flush=True)


if __name__ == "__main__":
    sys.exit(main())
