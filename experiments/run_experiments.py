"""Learning experiments: every variant on the memory tasks at a harder setting than the test.

    python experiments/run_experiments.py --write-recipes            # (re)write experiments/recipes/*.json
    python experiments/run_experiments.py --task tmaze10             # run every variant on one task
    python experiments/run_experiments.py --task tmaze10 --variant gtrxl lstm mlp

Each run is `jax-tx train --recipe experiments/recipes/<task>__<variant>.json` (the same code path);
full outputs (checkpoints, TensorBoard) go to runs/experiments/<task>/<variant>/, and the committed
evidence (metrics CSV, curve PNG, one row of results.csv) to experiments/results/.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import learning_suite as suite  # noqa: E402

RECIPES, RESULTS = HERE / "recipes", HERE / "results"
MACHINE = "2-core CPU, shared with other jobs"

# The policy sizes and PPO settings are the graded suite's (learning_suite.py), with a fixed BPTT horizon of 16.
# (the variants these older tables were run with: gru came later and runs in the suite only).
SMALL = suite.SMALL
VARIANT_POLICY = {k: v for k, v in suite.VARIANT_POLICY.items() if k != "gru"}
PPO = {"bptt_horizon": 16, **suite.PPO}
TASKS = {
    # 2048 steps per iteration, 300 iterations
    "tmaze10": dict(env="tmaze", env_kwargs={"corridor_length": 10}, horizon=11, total_steps=614_400, rollout=32),
    # the first batch: 4096 steps per iteration, 97 iterations (fewer updates for the same steps)
    "tmaze10_r64": dict(env="tmaze", env_kwargs={"corridor_length": 10}, horizon=11, total_steps=400_000, rollout=64),
    "repeat_previous": dict(
        env="repeat_previous",
        env_kwargs={"k": 4, "num_symbols": 4, "episode_length": 16},
        horizon=16,
        total_steps=800_000,
    ),  # fmt: skip
}


def recipe(task: str, variant: str) -> dict:
    t = TASKS[task]
    policy = {**SMALL, **VARIANT_POLICY[variant]}
    policy["memory_len"] = t["horizon"] + 8  # XL memory covers the whole episode
    policy["max_cache_size"] = 4 * (t["horizon"] + 4)  # sliding: 4 tokens per step
    return {
        "variant": variant,
        "env": t["env"],
        "env_kwargs": t["env_kwargs"],
        "policy": policy,
        "ppo": PPO,
        "num_envs": 64,
        "rollout_steps": t.get("rollout", 64),
        "total_steps": t["total_steps"],
        "iterations_per_call": 5,
        "checkpoint_every": 50,
    }


def recipe_path(task: str, variant: str) -> Path:
    return RECIPES / f"{task}__{variant}.json"


def write_recipes() -> None:
    RECIPES.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        for variant in VARIANT_POLICY:
            recipe_path(task, variant).write_text(json.dumps(recipe(task, variant), indent=2) + "\n")


def run(task: str, variant: str, seed: int) -> dict:
    from jax_tx.cli.train import build_parser, config_from_args
    from jax_tx.ppo.run import fit

    log_dir = Path("runs/experiments") / task / f"{variant}-s{seed}"
    if log_dir.exists():
        shutil.rmtree(log_dir)
    args = build_parser().parse_args(["--recipe", str(recipe_path(task, variant)), "--seed", str(seed)])
    tcfg = config_from_args(args).replace(log_dir=str(log_dir))
    res = fit(tcfg, progress=False, echo=lambda s: None)
    out = RESULTS / task
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(log_dir / "metrics.csv", out / f"{variant}-s{seed}.csv")
    shutil.copy(log_dir / "curve.png", out / f"{variant}-s{seed}.png")
    return {
        "task": task,
        "env": f"{tcfg.env} {json.dumps(tcfg.env_kwargs, sort_keys=True)}",
        "variant": variant,
        "seed": seed,
        "env_steps": res.iteration * tcfg.steps_per_iteration,
        "final_success": round(res.final_success, 3),
        "sps": round(res.sps) if res.sps == res.sps else "",
        "wall_s": round(res.wall_s, 1),
        "machine": MACHINE,
        "python": platform.python_version(),
        "versions": versions_line(),
    }


def versions_line() -> str:
    """jax / jaxlib / flax / optax / orbax / torch versions, CPU or GPU model and git commit, for the tables."""
    from jax_tx.ppo.provenance import provenance

    p = provenance()
    libs = ", ".join(f"{k} {p[k]}" for k in ("jax", "jaxlib", "flax", "optax", "orbax", "torch"))
    commit = (p["git_commit"] or "-")[:10] + ("+" if p["git_dirty"] else "")
    return f"{libs}; {'; '.join(p['devices'])}; {p['cpu']}; git {commit}"


def append_result(row: dict) -> None:
    path = RESULTS / "results.csv"
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [
                r
                for r in csv.DictReader(f)
                if (r["task"], r["variant"], r["seed"]) != (row["task"], row["variant"], str(row["seed"]))
            ]  # noqa: E501
    rows.append(row)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--write-recipes", action="store_true")
    p.add_argument("--task", choices=sorted(TASKS))
    p.add_argument("--variant", nargs="*", default=list(VARIANT_POLICY))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    write_recipes()
    if args.task is None:
        return 0
    for variant in args.variant:
        row = run(args.task, variant, args.seed)
        append_result(row)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
