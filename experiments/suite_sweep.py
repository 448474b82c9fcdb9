"""The small per-variant sweep behind the suite's recipes: one axis at a time around the base recipe.

    python experiments/suite_sweep.py --task tmaze50 --variant lstm --axes bptt init --seeds 0 1 --budget 0.5
    python experiments/suite_sweep.py --choose            # pick the best point per (task, variant) -> choices.json

Each point is one experiments/learning_suite.py run tagged "sweep:<axis>=<name>" (its own row in
results/suite/runs.csv, seeds trained together). --choose scores every (task, variant)'s points by mean greedy
success, then mean final training success, then the smaller budget (env steps trained), then fewer median steps
to 0.9 (each of the two means rounded to 0.01), keeps a point only if it beats the
base recipe (its "sweep:base" row, or the untagged row when the points ran at full budget and seeds, e.g.
`learning_suite.py --tag sweep:bptt=128 --set ppo.bptt_horizon=128`; of several base rows, the one run on the
point's CPU model, e.g. a rerun tagged "check:base,xeon"), and writes
experiments/recipes/suite/choices.json, which learning_suite.recipe() applies on top of the base tables.
What was swept is in experiments/SUITE.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import learning_suite as suite  # noqa: E402

AXES = {
    "lr": {"3e-4": {"ppo.learning_rate": 3e-4, "ppo.lr_final": 3e-5}, "3e-3": {"ppo.learning_rate": 3e-3}},
    "bptt": {"32": {"ppo.bptt_horizon": 32}, "64": {"ppo.bptt_horizon": 64}, "128": {"ppo.bptt_horizon": 128}},
    "rollout": {"128": {"rollout_steps": 128}, "256": {"rollout_steps": 256}},
    "entropy": {"0.03": {"ppo.ent_coef": 0.03}, "0.003": {"ppo.ent_coef": 0.003}},
    "memory": {"x2": "memory_x2"},
    "init": {"orthogonal": {"policy.init": "orthogonal"}},
}


def point_overrides(task: str, variant: str, spec) -> dict:
    """An axis point's overrides; "memory_x2" doubles the XL memory / sliding cache of the base recipe."""
    if spec != "memory_x2":
        return dict(spec)
    base = suite.recipe(task, variant)["policy"]
    return {"policy.memory_len": 2 * base["memory_len"], "policy.max_cache_size": 2 * base["max_cache_size"]}


def legal(rec: dict) -> bool:
    """Points that do not fit the recipe (BPTT longer than the rollout) are skipped."""
    return rec["rollout_steps"] % rec["ppo"]["bptt_horizon"] == 0


def run_points(task: str, variant: str, axes: list[str], seeds: list[int], budget: float) -> None:
    suite.run_suite(task, variant, seeds, {}, "sweep:base", budget)
    for axis in axes:
        for name, spec in AXES[axis].items():
            over = point_overrides(task, variant, spec)
            rec = suite.apply_overrides(suite.recipe(task, variant), over)
            if "ppo.bptt_horizon" in over and not legal(rec):
                over["rollout_steps"] = over["ppo.bptt_horizon"]
            suite.run_suite(task, variant, seeds, over, f"sweep:{axis}={name}", budget)


def score(row: dict) -> tuple:
    greedy = [float(x) for x in row["greedy_success"].split()]
    final = [float(x) for x in row["final_success"].split()]
    hits = [int(x) for x in row["steps_to_0.9"].split() if x != "-"]
    to90 = statistics.median(hits) if len(hits) == len(final) else float("inf")
    return (round(statistics.fmean(greedy), 2), round(statistics.fmean(final), 2), -int(row["env_steps"]), -to90)


def cpu(row: dict) -> str:
    """The CPU model a row ran on: its machine field up to the first ';'."""
    return row.get("machine", "").split(";")[0]


def base_for(point: dict, bases: list[dict]) -> dict:
    """The base row run on the point's CPU model, else the first base row."""
    same_cpu = [b for b in bases if cpu(b) == cpu(point)]
    return (same_cpu or bases)[0]


def choose() -> dict:
    """{"task__variant": overrides} of the best sweep point that beats its base, from results/suite/runs.csv.

    A point is compared with the base run on its own CPU model where there is one (recipes sit on a knife edge
    that one CPU's rounding can tip, see SUITE.md), else with the first base row."""
    with open(suite.RESULTS / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:  # task "default" is recipes/default.json as it is: changed by hand, with its evidence in SUITE.md
        if r["tag"].startswith("sweep:") and r["task"] != "default":
            groups.setdefault((r["task"], r["variant"]), []).append(r)
    choices = {}
    for (task, variant), points in sorted(groups.items()):
        bases = [r for r in points if r["tag"] == "sweep:base"]
        if not bases:  # full-budget points: the untagged row and its reruns on other CPUs ("check:base,<cpu>")
            bases = [r for r in rows if (r["task"], r["variant"]) == (task, variant)]
            bases = [r for r in bases if r["tag"] == "" or r["tag"].startswith("check:base")]
        if not bases:
            continue
        winners = [p for p in points if p["tag"] != "sweep:base" and score(p) > score(base_for(p, bases))]
        if winners:
            best = max(winners, key=score)
            over = json.loads(best["overrides"])
            if bases[0]["tag"] == "sweep:base":  # a reduced budget shared with its base is the sweep's economy
                over.pop("total_steps", None)
            choices[f"{task}__{variant}"] = {"from": best["tag"], "overrides": over}
    return choices


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", choices=sorted(suite.TASKS))
    p.add_argument("--variant", nargs="*", default=[])
    p.add_argument("--axes", nargs="*", default=[], choices=list(AXES))
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--choose", action="store_true", help="write experiments/recipes/suite/choices.json")
    args = p.parse_args(argv)
    for variant in args.variant:
        run_points(args.task, variant, args.axes, args.seeds, args.budget)
    if args.choose:
        out = suite.RECIPES / "choices.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(choose(), indent=2, sort_keys=True) + "\n")
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
