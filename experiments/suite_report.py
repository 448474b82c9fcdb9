"""results/suite/RESULTS.md and one curve PNG per task, generated from results/suite/runs.csv and the curve CSVs.

    python experiments/suite_report.py

Never edit RESULTS.md by hand: rerun this script. Rows tagged "" are the base recipes, replaced by the sweep
point recipes/suite/choices.json picked (run at the same seeds and budget; its name in brackets); tagged rows
(sweep points, root-cause studies) also go to their own tables. Success mean and spread are over the seeds of a row.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "suite"
sys.path.insert(0, str(HERE))
from learning_suite import CHOICES, TASKS, metrics_path  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split()]


def mean_spread(values: list[float]) -> str:
    """'mean ± population std (min..max)' of the per-seed values."""
    if not values:
        return "-"
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f} ({min(values):.2f}..{max(values):.2f})"


def steps_summary(text: str) -> str:
    """Per-seed steps to 0.9 ('-' = never): 'k of n seeds, median N'."""
    items = text.split()
    hit = sorted(int(x) for x in items if x != "-")
    if not hit:
        return f"0/{len(items)}"
    return f"{len(hit)}/{len(items)}, median {statistics.median(hit) / 1000:.0f}k"


def read_rows() -> list[dict]:
    with open(RESULTS / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def chosen_row(rows: list[dict], base: dict, choices: dict) -> dict:
    """The row a (task, variant) reports: the sweep point choices.json picked (same seeds, full budget), if any."""
    pick = choices.get(f"{base['task']}__{base['variant']}", {}).get("from")
    for r in rows:
        if pick and (r["task"], r["variant"], r["tag"]) == (base["task"], base["variant"], pick):
            return {**r, "variant": f"{r['variant']} ({pick.removeprefix('sweep:')})", "curve": r["tag"]}
    return base


def row_line(r: dict, with_tag: bool) -> str:
    final, greedy = floats(r["final_success"]), floats(r["greedy_success"])
    solved = sum(g >= 0.9 for g in greedy)
    cells = [r["variant"]] + ([r["tag"], f"`{r['overrides']}`"] if with_tag else [])
    cells += [
        r["seeds"].replace(" ", ","),
        f"{int(r['env_steps']) / 1000:.0f}k",
        mean_spread(final),
        mean_spread(greedy),
        f"{solved}/{len(greedy)}",
        steps_summary(r["steps_to_0.9"]),
        r["sps"] or "-",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = ["seeds", "env steps", "final train success", "greedy success", "greedy >= 0.9", "steps to 0.9", "SPS"]


def table(rows: list[dict], with_tag: bool) -> list[str]:
    head = ["variant"] + (["tag", "overrides"] if with_tag else []) + HEADER
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + [row_line(r, with_tag) for r in sorted(rows, key=lambda r: (r["variant"], r["tag"]))]


def solved_summary(rows: list[dict], choices: dict) -> list[str]:
    """One line per task: which variants reach greedy success >= 0.9 on every seed (chosen rows), which on some."""
    lines = ["| task | every seed >= 0.9 | some seeds | none |", "|---|---|---|---|"]
    for task in ["default", *TASKS]:
        chosen = [chosen_row(rows, r, choices) for r in rows if r["task"] == task and r["tag"] == ""]
        if not chosen:
            continue
        cells: dict[str, list[str]] = {"all": [], "some": [], "none": []}
        for r in sorted(chosen, key=lambda r: r["variant"]):
            greedy = floats(r["greedy_success"])
            hit = sum(g >= 0.9 for g in greedy)
            kind = "all" if hit == len(greedy) else "some" if hit else "none"
            cells[kind].append(r["variant"] + ("" if kind != "some" else f" {hit}/{len(greedy)}"))
        lines.append(f"| {task} | " + " | ".join(", ".join(cells[k]) or "-" for k in ("all", "some", "none")) + " |")
    return lines


LADDERS = {
    "T-Maze": ("tmaze10", "tmaze50", "tmaze100"),
    "MemoryChain": ("memchain16", "memchain64", "memchain256"),
    "RepeatPrevious": ("repeat4", "repeat16"),
}
"""The graded rungs whose memory span grows: corridor 10 / 50 / 100, memory_length 16 / 64 / 256, k = 4 / 16."""


def solves(r: dict, min_seeds: int = 3) -> bool:
    """A row solves its task when it has >= min_seeds seeds and every seed's greedy success is >= 0.9."""
    greedy = floats(r["greedy_success"])
    return len(greedy) >= min_seeds and all(g >= 0.9 for g in greedy)


def longest_solved(rows: list[dict], variant: str, rungs: tuple[str, ...]) -> str:
    """'<rung> (<tag>, <env steps> = <x> budget)' for the longest rung any row of `variant` (any tag, any budget)
    solves on every seed, '-' if none, plus '; tried up to <rung>' when longer rungs were run and not solved."""
    mine = [r for r in rows if r["variant"] == variant and r["task"] in rungs]
    if not mine:
        return "not run"
    tried = max(rungs.index(r["task"]) for r in mine)
    best = None
    for i, task in enumerate(rungs):
        wins = [r for r in mine if r["task"] == task and solves(r)]
        if wins:
            best = (i, min(wins, key=lambda r: int(r["env_steps"])))
    if best is None:
        text = "-"
    else:
        i, r = best
        ratio = int(r["env_steps"]) / TASKS[r["task"]]["steps"]
        text = f"{r['task']} ({r['tag'] or 'base'}, {int(r['env_steps']) / 1000:.0f}k = {ratio:.1f}x budget)"
    if best is None or tried > best[0]:
        text += f"; tried up to {rungs[tried]}"
    return text


def longest_table(rows: list[dict]) -> list[str]:
    """Per variant and ladder, the longest rung solved on every seed by any row in runs.csv."""
    variants = sorted({r["variant"] for r in rows if r["task"] in sum(LADDERS.values(), ())})
    lines = ["| variant | " + " | ".join(LADDERS) + " |", "|---|" + "---|" * len(LADDERS)]
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(longest_solved(rows, v, rungs) for rungs in LADDERS.values()) + " |")
    return lines


def plot_task(task: str, rows: list[dict]) -> Path | None:
    """Mean training success over seeds with a min..max band, one line per variant (chosen recipes only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = 0
    for r in sorted(rows, key=lambda r: r["variant"]):
        name = r["variant"].split(" ")[0] + ("." + r["curve"].replace(":", "-") if r.get("curve") else "")
        path = RESULTS / task / f"{name}.csv"
        if not path.exists():
            continue
        data = np.genfromtxt(path, delimiter=",", names=True)
        steps = data["env_steps"]
        seeds = np.stack([data[n] for n in data.dtype.names[1:]], axis=0)
        seeds = np.nan_to_num(seeds, nan=0.0)
        k = max(1, min(5, seeds.shape[1] // 10))  # a short running mean so the band is readable
        smooth = np.stack([np.convolve(s, np.ones(k) / k, mode="same") for s in seeds])
        mean = smooth.mean(axis=0)
        (line,) = ax.plot(steps, mean, label=f"{r['variant']} ({seeds.shape[0]} seeds)")
        ax.fill_between(steps, smooth.min(axis=0), smooth.max(axis=0), color=line.get_color(), alpha=0.2)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="env steps", ylabel="training success", title=f"{task}: mean over seeds, band = min..max")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = RESULTS / f"{task}.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def probe_section(path: Path) -> list[str]:
    """The supervised memory probe's rows (experiments/memory_probe.py), one line per configuration."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["variant"], int(r["length"]), r["final_obs"], r["overrides"], r["steps"]), []).append(r)
    lines = [
        "## Supervised memory probe",
        "",
        "`experiments/memory_probe.py`: a +-1 cue at step 0 read at step L, MemoryChain's observations, full BPTT,",
        "Adam 1e-3 on the step-L cross-entropy (no RL). grad = max over the batch of the absolute derivative of the",
        "step-L logit margin with respect to the cue, at initialisation (0: the decision step cannot read the cue).",
        "Policies: the suite's sizes (`learning_suite.VARIANT_POLICY`, so lstm has forget bias 3) plus the overrides.",
        "",
        "| variant | L | decision-step obs | overrides | Adam steps | grad per seed | first acc >= 0.95 | final acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (variant, length, final, over, steps), rs in sorted(groups.items()):
        cells = [" ".join(r[k] for r in rs) for k in ("grad_cue", "first_acc_0.95", "final_acc")]
        lines.append(f"| {variant} | {length} | {final} | `{over}` | {steps} | {' | '.join(cells)} |")
    return lines + [""]


def dead_features_section(path: Path) -> list[str]:
    """The AGaLiTe dead-feature rows (experiments/agalite_dead_features.py), one line per seed and layer; a row
    written before zero_score was recorded shows "-" there."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: (r["task"], r["variant"], r["overrides"], int(r["seed"])))
    lines = [
        "## AGaLiTe feature maps dead at initialisation",
        "",
        "`experiments/agalite_dead_features.py`: one rollout of each seed's initial policy (the suite recipe plus",
        "the overrides), replayed in sequence mode; per head, the fraction of steps where phi(q) (query) or psi(k)",
        "(key) is exactly zero, and where the head's read-out score <s, phi(q)> is zero (disjoint key and query",
        "supports: the head reads 0 and passes no gradient; the fast layer sums the score over heads, so there",
        "only a layer whose heads all score zero is mute). dead heads: heads at >= 0.99 in any of the three.",
        "",
        "| task | variant | overrides | seed | layer | query zero, per head | key zero, per head | score zero, per head"
        " | dead heads |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['variant']} | `{r['overrides']}` | {r['seed']} | {r['layer']} | {r['dead_query']} | "
            f"{r['dead_key']} | {r.get('zero_score') or '-'} | {r['dead_heads']} of {r['num_heads']} |"
        )
    return lines + [""]


def read_metrics(path: Path) -> dict[str, list[dict]]:
    """A .metrics.csv's rows per seed, in iteration order."""
    by_seed: dict[str, list[dict]] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            by_seed.setdefault(r["seed"], []).append(r)
    return by_seed


def walk(iterations: list[dict], steps_per_iteration: int) -> tuple[float, float]:
    """(mean policy entropy, env steps per finished episode = steps_per_iteration * n / finished episodes) over
    n iterations of one seed."""
    episodes = sum(float(r["episodes"]) for r in iterations)
    entropy = statistics.fmean(float(r["entropy"]) for r in iterations)
    return entropy, steps_per_iteration * len(iterations) / max(episodes, 1.0)


def walk_cells(iterations: list[dict], steps_to: str, last: int = 10, before: int = 5) -> tuple[str, str]:
    """('entropy steps' over the last `last` iterations, the same over the `before` iterations ahead of the first
    5-iteration window at training success >= 0.9, which ends at env step `steps_to`; '-' if it never did)."""
    step = int(iterations[0]["env_steps"])
    end = "{:.2f} {:.0f}".format(*walk(iterations[-last:], step))
    if steps_to == "-":
        return end, "-"
    start = int(steps_to) // step - 5  # the window's first iteration
    ahead = iterations[max(0, start - before) : start]
    return end, "{:.2f} {:.0f}".format(*walk(ahead, step)) if ahead else "-"


def walk_section(rows: list[dict]) -> list[str]:
    """T-Maze rows with a metrics file: per seed, entropy and steps per episode at the end of training and before
    training success first reached 0.9, beside training and greedy success."""
    latest = {(r["task"], r["variant"], r["tag"]): r for r in rows if r["task"].startswith("tmaze")}
    lines = [
        "## T-Maze: walk and entropy",
        "",
        "Per seed (from the row's .metrics.csv), 'entropy steps': mean policy entropy (ln 3 = 1.10 is uniform over",
        "the 3 actions) and env steps per finished episode (a direct walk takes about corridor + 2 steps; turns are",
        "no-ops in the corridor), over the last 10 iterations (end) and over the 5 iterations before the first",
        "5-iteration window at training success >= 0.9 (before 0.9; '-': never reached). Seeds in the row's order.",
        "",
        "| task | variant | tag | seeds | end | before 0.9 | final train success | greedy success |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (task, variant, tag), r in sorted(latest.items()):
        path = metrics_path(task, variant, tag)
        if not path.exists():
            continue
        by_seed, seeds = read_metrics(path), r["seeds"].split()
        cells = [walk_cells(by_seed[s], to90) for s, to90 in zip(seeds, r["steps_to_0.9"].split(), strict=True)]
        end, before = (" / ".join(c[k] for c in cells) for k in (0, 1))
        lines.append(
            f"| {task} | {variant} | {tag or '-'} | {','.join(seeds)} | {end} | {before} | {r['final_success']} | "
            f"{r['greedy_success']} |"
        )
    return lines + [""]


def main() -> int:
    rows = read_rows()
    choices = json.loads(CHOICES.read_text()) if CHOICES.exists() else {}
    machines = sorted({r["machine"].split("; git", 1)[0] for r in rows})
    loads = [float(r["machine"].rsplit("load ", 1)[1]) for r in rows if "load " in r["machine"]]
    lines = [
        "# Graded memory suite: results",
        "",
        "Generated by `experiments/suite_report.py` from `results/suite/runs.csv` (runs by",
        "`experiments/learning_suite.py`); do not edit. Per row: the seeds trained together (vmapped), final",
        "training success = mean of the last 10 iterations (sampled actions), greedy success over 200 fresh",
        "episodes, steps to 0.9 = first time the 5-iteration running mean of training success reached 0.9.",
        "Mean ± std (min..max) over seeds. SPS counts all seeds' env steps per second (compile excluded).",
        "",
        "Machines: "
        + " | ".join(machines)
        + (f" (1-min load at the end of the runs {min(loads):.1f}..{max(loads):.1f})" if loads else ""),
        "",
    ]
    lines += ["## Summary: greedy success >= 0.9", ""] + solved_summary(rows, choices) + [""]
    lines += [
        "## Longest horizon solved",
        "",
        "Per variant, the longest rung where some row of runs.csv (base, sweep point or study, any budget) has",
        "greedy success >= 0.9 on every one of >= 3 seeds; the row with the fewest env steps is named, with its",
        "multiple of the task's budget.",
        "",
    ]
    lines += longest_table(rows) + [""]
    for task in ["default", *TASKS]:
        chosen = [chosen_row(rows, r, choices) for r in rows if r["task"] == task and r["tag"] == ""]
        tagged = [r for r in rows if r["task"] == task and r["tag"] != ""]
        if not chosen and not tagged:
            continue
        t = TASKS.get(task, {"env": "the `make train` recipe", "env_kwargs": "experiments/recipes/default.json"})
        lines += [f"## {task}", "", f"env `{t['env']}` {t['env_kwargs']}", ""]
        if chosen:
            png = plot_task(task, chosen)
            lines += table(chosen, with_tag=False) + [""]
            if png:
                lines += [f"![{task}]({png.name})", ""]
        if tagged:
            lines += ["Sweep points and studies:", ""] + table(tagged, with_tag=True) + [""]
    lines += probe_section(RESULTS / "probe.csv")
    lines += dead_features_section(RESULTS / "dead_features.csv")
    lines += walk_section(rows)
    (RESULTS / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print(RESULTS / "RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
