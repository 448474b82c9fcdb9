"""Summarise experiments/results/: a markdown table and one combined success curve per task.

    python experiments/summarize.py          # writes experiments/results/RESULTS.md and <task>/all.png

Steady SPS is the median per-call SPS of a run's metrics.csv after its first 5 rows (the first
call compiles); `sps` in results.csv is the run's own figure (calls that compiled excluded).
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent))


def steady_sps(path: Path) -> float:
    from jax_tx.ppo.logging import read_csv

    rows = read_csv(path)[5:]
    return statistics.median(r["sps"] for r in rows) if rows else float("nan")


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jax_tx.ppo.logging import read_csv, smooth

    with open(RESULTS / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    lines = [
        "| task | env | variant | seed | env steps | final success | SPS (steady) | wall time (s) | machine "
        "| versions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sps = steady_sps(RESULTS / r["task"] / f"{r['variant']}-s{r['seed']}.csv")
        lines.append(
            f"| {r['task']} | {r['env']} | {r['variant']} | {r['seed']} | {int(r['env_steps']):,} | "
            f"{float(r['final_success']):.3f} | {sps:,.0f} | {float(r['wall_s']):.0f} | {r['machine']} | "
            f"{r.get('versions') or 'not recorded'} |"
        )
    (RESULTS / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    for task in sorted({r["task"] for r in rows}):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        variants = sorted({r["variant"] for r in rows if r["task"] == task})
        colors = {v: plt.cm.tab10(i % 10) for i, v in enumerate(variants)}
        for r in (r for r in rows if r["task"] == task):
            data = read_csv(RESULTS / task / f"{r['variant']}-s{r['seed']}.csv")
            ax.plot(
                [d["env_steps"] for d in data],
                smooth([d["success"] for d in data], 5),
                label=f"{r['variant']} seed {r['seed']}",
                color=colors[r["variant"]],
                linestyle="-" if r["seed"] == "0" else "--",
            )
        ax.set_xlabel("env steps")
        ax.set_ylabel("success rate (training episodes)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_title(task)
        fig.tight_layout()
        fig.savefig(RESULTS / task / "all.png", dpi=100)
        plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
