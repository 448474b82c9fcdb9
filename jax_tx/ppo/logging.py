"""Run outputs of `jax-tx train`: a progress bar, metrics.csv, TensorBoard events, a PNG curve.

    LOG_DIR/config.json     the fully resolved TrainConfig
    LOG_DIR/metrics.csv     one row per iteration (iteration, env_steps, wall_s, sps, metrics...)
    LOG_DIR/tb/             TensorBoard event files (same scalars)
    LOG_DIR/curve.png       success rate, episode return and loss against env steps
    LOG_DIR/checkpoints/    orbax checkpoints (jax_tx.io.checkpoint)

On resume the CSV keeps its rows up to the restored iteration and continues after them.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path

METRIC_KEYS = (
    "success",
    "episode_return",
    "episodes",
    "loss",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clipfrac",
    "explained_variance",
    "grad_norm",
    "lr",
    "ent_coef",
    "clip_coef",
    "vf_clip_coef",
    "nonfinite",
)
COLUMNS = ("iteration", "env_steps", "wall_s", "sps") + METRIC_KEYS


def read_csv(path: str | os.PathLike) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


class RunLogger:
    def __init__(self, log_dir: str | os.PathLike, total_iterations: int, start_iteration: int = 0, progress=True):
        self.dir = Path(log_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dir / "metrics.csv"
        kept = []
        if start_iteration > 0 and self.csv_path.exists():
            kept = [r for r in read_csv(self.csv_path) if r["iteration"] <= start_iteration]
        self._file = open(self.csv_path, "w", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._csv.writeheader()
        for row in kept:
            self._csv.writerow({k: _fmt(row.get(k, math.nan)) for k in COLUMNS})
        self._file.flush()
        self._tb = None
        try:
            from tensorboardX import SummaryWriter

            kw = {"purge_step": start_iteration + 1} if start_iteration > 0 else {}
            self._tb = SummaryWriter(str(self.dir / "tb"), **kw)
        except ImportError:
            print("tensorboardX is not installed: no TensorBoard events (pip install tensorboardX)", file=sys.stderr)
        from tqdm import tqdm

        self._bar = tqdm(
            total=total_iterations,
            initial=start_iteration,
            unit="it",
            disable=not progress,
            file=sys.stdout,
            smoothing=0,  # rate = iterations since restart_clock() / time since then: a steady ETA
        )

    def restart_clock(self, pending: int = 0) -> None:
        """Time the bar's rate (and ETA) from now, not counting the `pending` iterations about to be logged.

        Called right after the call that compiled, so its compile time never enters the ETA.
        """
        import time

        now = time.time()
        self._bar.start_t = self._bar.last_print_t = now  # no redraw while the pending rows are logged
        self._bar.initial = self._bar.last_print_n = self._bar.n + pending

    def note(self, message: str) -> None:
        """Print a line without breaking the progress bar."""
        self._bar.write(message, file=sys.stdout)

    def log(self, iteration: int, env_steps: int, wall_s: float, sps: float, metrics: dict[str, float]) -> None:
        row = {"iteration": iteration, "env_steps": env_steps, "wall_s": wall_s, "sps": sps}
        row.update({k: float(metrics.get(k, math.nan)) for k in METRIC_KEYS})
        self._csv.writerow({k: _fmt(v) for k, v in row.items()})
        self._file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k != "iteration" and not math.isnan(v):
                    self._tb.add_scalar(k if k in ("env_steps", "wall_s", "sps") else f"train/{k}", v, iteration)
            for k in sorted(set(metrics) - set(METRIC_KEYS)):  # e.g. entropy_head_k of a factored policy
                if not math.isnan(float(metrics[k])):
                    self._tb.add_scalar(f"train/{k}", float(metrics[k]), iteration)
        self._bar.update(1)
        self._bar.set_postfix(
            sps=f"{sps:,.0f}", ret=f"{row['episode_return']:.3f}", success=f"{row['success']:.3f}", refresh=False
        )

    def close(self) -> None:
        self._bar.close()
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _fmt(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def smooth(xs: list[float], window: int) -> list[float]:
    """Trailing mean over `window` points, ignoring NaN (iterations without finished episodes)."""
    out = []
    for i in range(len(xs)):
        seg = [x for x in xs[max(0, i - window + 1) : i + 1] if not math.isnan(x)]
        out.append(sum(seg) / len(seg) if seg else math.nan)
    return out


def final_success(rows: list[dict[str, float]], last: int = 10) -> float:
    """Mean success over the last `last` iterations that finished episodes."""
    vals = [r["success"] for r in rows if not math.isnan(r["success"])][-last:]
    return sum(vals) / len(vals) if vals else math.nan


def curve_figure(rows: list[dict[str, float]], title: str = ""):
    """Success rate, episode return and loss against env steps; x ticks in k / M, at most 5 per panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter, MaxNLocator

    steps = [r["env_steps"] for r in rows]
    window = max(1, len(rows) // 50)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (("success", "success rate", "tab:blue"), ("episode_return", "episode return", "tab:orange"),
              ("loss", "PPO loss", "tab:green"))  # fmt: skip
    for ax, (key, label, color) in zip(axes, panels, strict=True):
        ax.plot(steps, smooth([r.get(key, math.nan) for r in rows], window), color=color)
        ax.set_ylabel(label)
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curve(csv_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "") -> Path:
    import matplotlib.pyplot as plt

    fig = curve_figure(read_csv(csv_path), title)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)


def json_safe(obj):
    """obj with every NaN / inf float replaced by None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
