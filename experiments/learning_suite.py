"""The graded memory suite (issue 15): every variant x task x seed, seeds trained together in one program.

    python experiments/learning_suite.py --task tmaze50 --variant gtrxl lstm --seeds 0 1 2
    python experiments/learning_suite.py --task memchain64 --variant trxl --seeds 0 1 --set ppo.learning_rate=3e-4 \
        --tag sweep --budget 0.5                       # a sweep point: overrides, half the budget, its own tag
    python experiments/suite_report.py                 # results/suite/RESULTS.md + one curve PNG per task

A run is the recipe experiments/recipes/suite/<task>__<variant>.json (written by --write-recipes from the
tables below plus the sweep's choice in recipes/suite/choices.json) trained for every seed at once: the jax_tx
Trainer's iteration (rollout -> GAE -> segment BPTT update, exactly what `jax-tx train` runs) is vmapped over a
stacked TrainState of the seeds (Trainer.init_seeds / run_seeds), so 3 seeds cost far less than 3 runs on a CPU.
Each seed's iterations are the same function of its own state as in a single-seed run (tests/test_ppo.py checks
Trainer.run_seeds against Trainer.run seed by seed).

Per (task, variant, tag) it appends one row to results/suite/runs.csv: per-seed final training success and
episode return (means of the last 10 iterations), greedy success over `eval_episodes` fresh episodes, env steps
until training success first reaches 0.9 (mean over a 5-iteration window), SPS (excluding compile) and the
machine; and per-iteration training success per seed to results/suite/<task>/<variant>[.<tag>].csv (':' -> '-').
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPES, RESULTS = HERE / "recipes" / "suite", HERE / "results" / "suite"

SMALL = dict(d_model=32, num_layers=1, num_heads=2, d_ff=64, actor_hidden=64, critic_hidden=64)
VARIANT_POLICY = {
    "gtrxl": {},
    "trxl": {},
    "trxl_nvidia": {},
    "agalite": dict(d_head=16, eta=4, num_oscillators=4),
    "agalite_fast": dict(d_head=16, eta=2, num_oscillators=4),
    "sliding": dict(d_model=16, num_heads=1, num_layers=2),
    # forget-gate bias 3 (retention sigmoid(3) = 0.95 per step at init): experiments/SUITE.md, study lstm_tmaze
    "lstm": dict(lstm_hidden=32, lstm_forget_bias=3.0),
    "gru": dict(lstm_hidden=32),
    "mlp": {},
}
MEMORY_VARIANTS = tuple(v for v in VARIANT_POLICY if v != "mlp")
PPO = dict(
    num_minibatches=4,
    update_epochs=4,
    learning_rate=1e-3,
    lr_final=1e-4,
    ent_coef=0.01,
    ent_coef_final=0.0,
    gamma=0.99,
)
# horizon: the steps a memory must span (the XL memory / sliding cache / BPTT horizon are sized from it).
TASKS = {
    "tmaze10": dict(env="tmaze", env_kwargs={"corridor_length": 10}, horizon=11, steps=400_000),
    "tmaze50": dict(env="tmaze", env_kwargs={"corridor_length": 50, "step_reward": -0.01}, horizon=51, steps=600_000),
    "tmaze100": dict(
        env="tmaze", env_kwargs={"corridor_length": 100, "step_reward": -0.005}, horizon=101, steps=800_000
    ),
    "memchain16": dict(env="gymnax:MemoryChain-bsuite", env_kwargs={"memory_length": 16}, horizon=17, steps=200_000),
    "memchain64": dict(env="gymnax:MemoryChain-bsuite", env_kwargs={"memory_length": 64}, horizon=65, steps=400_000),
    "memchain256": dict(env="gymnax:MemoryChain-bsuite", env_kwargs={"memory_length": 256}, horizon=257, steps=800_000),
    "repeat4": dict(
        env="repeat_previous", env_kwargs={"k": 4, "num_symbols": 4, "episode_length": 16}, horizon=5, steps=800_000
    ),
    "repeat16": dict(
        env="repeat_previous", env_kwargs={"k": 16, "num_symbols": 4, "episode_length": 48}, horizon=17, steps=800_000
    ),
    "count_recall": dict(env="count_recall", env_kwargs={}, horizon=16, steps=800_000),
    # xminigrid 0.9.3: see the object, walk the corridor, pick its match (a memoryless policy: 0.5 of the finished)
    "minigrid_memory16": dict(env="xminigrid:MiniGrid-MemoryS16", env_kwargs={}, horizon=32, steps=1_000_000),
}
CHOICES = RECIPES / "choices.json"
"""{"task__variant": {"from": sweep tag, "overrides": {...}}}: written by suite_sweep.py --choose (or by hand, with
the evidence named in experiments/SUITE.md); recipe() applies it on top of the tables above."""


def sweep_choice(task: str, variant: str) -> dict:
    choices = json.loads(CHOICES.read_text()) if CHOICES.exists() else {}
    return choices.get(f"{task}__{variant}", {}).get("overrides", {})


def row_overrides(task: str, variant: str, overrides: dict) -> dict:
    """What a row ran with on top of the base tables: the recipe's sweep choice (choices.json), then `overrides`
    (--set) over it, so suite_sweep.choose can make a chosen row's recipe whole again."""
    return {**sweep_choice(task, variant), **overrides}


def horizon_sizes(variant: str, horizon: int) -> tuple[dict, int]:
    """(policy memory fields, BPTT horizon) sized to the task: the XL memory and sliding cache cover `horizon`
    steps; recurrent cores (lstm, gru) get a BPTT horizon >= horizon (a power of two, 16..256), attention cores 16
    (their memory, not the gradient window, carries the cue)."""
    bptt = 16 if variant not in ("lstm", "gru") else min(256, 1 << max(4, (horizon - 1).bit_length()))
    return dict(memory_len=horizon + 8, max_cache_size=4 * (horizon + 4)), bptt


DEFAULT_RECIPE = HERE / "recipes" / "default.json"
"""The recipe behind `make train`: task "default" of this script runs it as it is (its variant, 200 eval episodes)."""


def recipe(task: str, variant: str) -> dict:
    if task == "default":
        return {**json.loads(DEFAULT_RECIPE.read_text()), "eval_episodes": 200}
    t = TASKS[task]
    policy_mem, bptt = horizon_sizes(variant, t["horizon"])
    rollout = max(64, bptt)
    out = {
        "variant": variant,
        "env": t["env"],
        "env_kwargs": t["env_kwargs"],
        "policy": {**SMALL, **VARIANT_POLICY[variant], **policy_mem},
        "ppo": {**PPO, "bptt_horizon": bptt},
        "num_envs": 64,
        "rollout_steps": rollout,
        "total_steps": t["steps"],
        "iterations_per_call": 5,
        "eval_episodes": 200,
    }
    return apply_overrides(out, sweep_choice(task, variant))


def apply_overrides(rec: dict, overrides: dict) -> dict:
    """{"ppo.learning_rate": 3e-4, "rollout_steps": 128, ...} applied to a copy of the recipe."""
    rec = json.loads(json.dumps(rec))
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = rec
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return rec


def parse_set(items: list[str]) -> dict:
    """["ppo.learning_rate=3e-4", "policy.init=orthogonal"] -> {key: JSON value (or the string)}."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def train_config(rec: dict):
    """The TrainConfig `jax-tx train --recipe` builds from this recipe (same parser, same checks)."""
    from jax_tx.cli.train import build_parser, config_from_args

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(rec, f)
    try:
        return config_from_args(build_parser().parse_args(["--recipe", f.name]))
    finally:
        os.unlink(f.name)


def train_seeds(tcfg, seeds: list[int], log=print, params_hook=None) -> dict:
    """Train every seed of `seeds` with one vmapped program; returns per-seed success curves, every per-iteration
    learner metric ("metrics": {name: [S, iterations]}, jax_tx.ppo.logging.METRIC_KEYS) and the final params.
    params_hook(stacked params) -> params edits the initial parameters (root-cause studies, e.g. a gate bias)."""
    import numpy as np

    from jax_tx.ppo.trainer import Trainer

    trainer = Trainer(tcfg)
    state = trainer.init_seeds(seeds)
    if params_hook is not None:
        state = state.replace(params=params_hook(state.params))
    calls = -(-tcfg.num_iterations // tcfg.iterations_per_call)  # whole calls: up to iterations_per_call - 1 extra
    every, t_run, t0 = {}, 0.0, time.perf_counter()
    for call in range(calls):
        t = time.perf_counter()
        state, metrics = trainer.run_seeds(state)
        succ = np.asarray(metrics["success"])  # [S, iterations_per_call]
        if call > 0:
            t_run += time.perf_counter() - t
        for name, value in metrics.items():
            every.setdefault(name, []).append(np.asarray(value))
        if call % 20 == 0 or call == calls - 1:
            log(f"  call {call + 1}/{calls}: success {np.nanmean(succ, axis=1).round(3).tolist()}")
    steps_per_call = tcfg.iterations_per_call * tcfg.steps_per_iteration
    metrics = {name: np.concatenate(v, axis=1) for name, v in every.items()}  # [S, iterations] each
    return {
        "trainer": trainer,
        "state": state,
        "success": metrics["success"],
        "episode_return": metrics["episode_return"],
        "metrics": metrics,
        "sps": len(seeds) * steps_per_call * (calls - 1) / t_run if calls > 1 else float("nan"),
        "wall_s": time.perf_counter() - t0,
    }


def greedy_success(trainer, state, seeds: list[int], episodes: int) -> list[float]:
    """Per seed: success rate of the greedy policy over `episodes` fresh episodes (unfinished ones count 0)."""
    import jax
    import numpy as np

    from jax_tx.ppo.evaluate import episodes_fn

    play = jax.jit(jax.vmap(episodes_fn(trainer.model, trainer.cfg, trainer.env, episodes)))
    keys = jax.vmap(jax.random.PRNGKey)(jax.numpy.asarray([10_000 + s for s in seeds]))
    out = play(state.params, keys)
    return np.where(out["finished"], out["success"], 0.0).mean(axis=1).tolist()


def steps_to(success, threshold: float, steps_per_iteration: int, window: int = 5) -> int | None:
    """Env steps (per seed) until the running mean of training success over the last `window` iterations in which
    an episode ended first reaches threshold. Iterations with no finished episode (nan) are skipped, not counted
    as 0: on MemoryChain-256 the 64 envs finish together every ~4 iterations, so a window counting nan as 0
    could never reach 0.9 however well the policy did."""
    import numpy as np

    s = np.asarray(success, float)
    ended = np.flatnonzero(~np.isnan(s))
    if len(ended) < window:
        return None
    run = np.convolve(s[ended], np.ones(window) / window, mode="valid")
    hit = np.flatnonzero(run >= threshold)
    return None if hit.size == 0 else int((ended[hit[0] + window - 1] + 1) * steps_per_iteration)


def steps_text(to90: list[int | None]) -> str:
    """The runs.csv steps_to_0.9 cell: one entry per seed, '-' where the seed never reached 0.9."""
    return " ".join("-" if x is None else str(x) for x in to90)


def curve_path(task: str, variant: str, tag: str) -> Path:
    """results/suite/<task>/<variant>[.<tag>].csv: per-iteration training success per seed (':' -> '-')."""
    return RESULTS / task / f"{variant}{'.' + tag.replace(':', '-') if tag else ''}.csv"


def metrics_path(task: str, variant: str, tag: str) -> Path:
    """The curve file's sibling <curve stem>.metrics.csv: every learner metric per seed and iteration."""
    return curve_path(task, variant, tag).with_suffix(".metrics.csv")


def write_metrics(path: Path, seeds: list[int], metrics: dict, steps_per_iteration: int) -> None:
    """One row per (seed, iteration): env_steps, seed, then each metric (as learner metrics.csv names them)."""
    names = sorted(metrics)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_steps", "seed", *names])
        for k, seed in enumerate(seeds):
            for i in range(metrics[names[0]].shape[1]):
                w.writerow([(i + 1) * steps_per_iteration, seed, *[f"{metrics[n][k, i]:.6g}" for n in names]])


def restate_steps_to() -> int:
    """Recompute every runs.csv row's steps_to_0.9 from its curve file with the current steps_to; returns the
    number of rows whose value changed (rows without a curve file are left as they are)."""
    import numpy as np

    changed = 0
    with open(RESULTS / ".runs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(RESULTS / "runs.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            path = curve_path(row["task"], row["variant"], row["tag"])
            if not path.exists():
                continue
            data = np.genfromtxt(path, delimiter=",", names=True)
            spi = int(data["env_steps"][0])
            to90 = [steps_to(data[name], 0.9, spi) for name in data.dtype.names[1:]]
            text = steps_text(to90)
            if text != row["steps_to_0.9"]:
                row["steps_to_0.9"] = text
                changed += 1
        if changed:
            write_rows(RESULTS / "runs.csv", rows)
    return changed


def machine_line() -> str:
    from jax_tx.ppo.provenance import provenance

    p = provenance()
    libs = ", ".join(f"{k} {p[k]}" for k in ("jax", "jaxlib", "flax", "optax", "torch"))
    commit = (p["git_commit"] or "-")[:10] + ("+" if p["git_dirty"] else "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()}-core {p['cpu']}; {libs}; python {platform.python_version()}; git {commit}; load {load:.1f}"
    )


def run_suite(
    task: str, variant: str, seeds: list[int], overrides: dict, tag: str, budget: float, log=print, params_hook=None
) -> dict:
    import numpy as np

    rec = apply_overrides(recipe(task, variant), overrides)
    variant = rec["variant"]
    rec["total_steps"] = int(rec["total_steps"] * budget)
    if budget != 1.0:  # the row says what it ran; suite_sweep.choose keeps it only where the recipe needs it
        overrides = {**overrides, "total_steps": rec["total_steps"]}
    tcfg = train_config(rec)
    log(f"{task} {variant} {tag or ''} seeds {seeds}: {tcfg.num_iterations} iterations x {tcfg.steps_per_iteration}")
    out = train_seeds(tcfg, seeds, log, params_hook)
    spi = tcfg.steps_per_iteration
    final = [float(np.nanmean(s[-10:])) for s in out["success"]]
    final_return = [float(np.nanmean(r[-10:])) for r in out["episode_return"]]
    greedy = greedy_success(out["trainer"], out["state"], seeds, tcfg.eval_episodes)
    to90 = [steps_to(s, 0.9, spi) for s in out["success"]]
    RESULTS.joinpath(task).mkdir(parents=True, exist_ok=True)
    curve = curve_path(task, variant, tag)
    with open(curve, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_steps", *[f"success_s{s}" for s in seeds]])
        for i in range(out["success"].shape[1]):
            w.writerow([(i + 1) * spi, *[f"{x:.4f}" for x in out["success"][:, i]]])
    write_metrics(metrics_path(task, variant, tag), seeds, out["metrics"], spi)
    row = {
        "task": task,
        "variant": variant,
        "tag": tag,
        "overrides": json.dumps(row_overrides(task, variant, overrides), sort_keys=True),
        "seeds": " ".join(map(str, seeds)),
        "env_steps": out["success"].shape[1] * spi,  # the iterations trained (whole calls), not num_iterations
        "final_success": " ".join(f"{x:.3f}" for x in final),
        "greedy_success": " ".join(f"{x:.3f}" for x in greedy),
        "final_return": " ".join(f"{x:.3f}" for x in final_return),
        "steps_to_0.9": steps_text(to90),
        "sps": round(out["sps"]) if out["sps"] == out["sps"] else "",
        "wall_s": round(out["wall_s"], 1),
        "machine": machine_line(),
    }
    append_row(row)
    log(json.dumps(row))
    return row


def append_row(row: dict) -> None:
    """results/suite/runs.csv, one row per (task, variant, tag): a rerun replaces its row."""
    path = RESULTS / "runs.csv"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / ".runs.lock", "w") as lock:  # several suite processes may finish at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        write_row(path, row)


def write_row(path: Path, row: dict, key_fields: tuple[str, ...] = ("task", "variant", "tag")) -> None:
    """Rewrite the CSV at `path` (atomically) with `row` in place of any row equal to it on `key_fields`."""
    key = tuple(str(row[k]) for k in key_fields)
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if tuple(r[k] for k in key_fields) != key]
    rows.append({k: str(v) for k, v in row.items()})
    write_rows(path, rows)


def write_rows(path: Path, rows: list[dict]) -> None:
    """Write `rows` to the CSV at `path` atomically (a temporary file, then a rename); new columns join as blanks."""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def write_recipes() -> None:
    RECIPES.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        for variant in VARIANT_POLICY:
            path = RECIPES / f"{task}__{variant}.json"
            path.write_text(json.dumps(recipe(task, variant), indent=2) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--write-recipes", action="store_true", help="(re)write experiments/recipes/suite/*.json")
    p.add_argument("--task", nargs="*", default=[], choices=["default", *sorted(TASKS)])
    p.add_argument("--variant", nargs="*", default=list(VARIANT_POLICY), choices=list(VARIANT_POLICY))
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides (sweep points)")
    p.add_argument("--tag", default="", help="row tag (sweep points get their own rows)")
    p.add_argument("--budget", type=float, default=1.0, help="fraction of the task's env-step budget")
    p.add_argument("--restate-steps-to", action="store_true", help="recompute runs.csv's steps_to_0.9 from the curves")
    args = p.parse_args(argv)
    if args.restate_steps_to:
        print(f"steps_to_0.9 restated in {restate_steps_to()} rows")
    if args.write_recipes:
        write_recipes()
    for task in args.task:
        variants = [recipe(task, "")["variant"]] if task == "default" else args.variant
        for variant in variants:
            run_suite(task, variant, args.seeds, parse_set(args.set), args.tag, args.budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
