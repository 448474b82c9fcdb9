"""The training loop for host envs: HostTrainer iterations, the same progress bar / CSV / curve as `jax-tx train`.

    groups = mettagrid_groups(env_kwargs, num_groups=2, seed=0)      # or any host envs
    result = fit_host(tcfg, groups)                                  # tcfg.num_envs = rows of all groups
    baseline = random_policy_returns(groups[0], steps=400, seed=0)   # the uniform-random policy's episode return

Writes LOG_DIR/config.json, metrics.csv, tb/, curve.png and summary.json (final return, random baseline if given,
steps/s and where the time went: env, policy, transfer, update).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from jax_tx.config import TrainConfig
from jax_tx.ppo.host_loop import TIMERS, HostTrainer
from jax_tx.ppo.logging import RunLogger, plot_curve, read_csv

SEED_RANGE = 2**31 - 1
"""mettagrid map seeds are C ints."""


def mettagrid_groups(env_kwargs: dict[str, Any], num_groups: int, seed: int) -> list:
    """num_groups MettaGridVecEnv of env_kwargs (num_maps per group + arena_config kwargs), distinct seeds."""
    from jax_tx.envs.mettagrid_adapter import MettaGridVecEnv

    return [MettaGridVecEnv(seed=(seed * 7919 + g * 104_729) % SEED_RANGE, **env_kwargs) for g in range(num_groups)]


def random_policy_returns(env, steps: int, seed: int) -> dict[str, float]:
    """Uniform-random actions for `steps` steps: mean episode return and success over the episodes that ended."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    returns, success = [], []
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(rng.integers(0, env.num_actions, env.num_envs))
        done = terminated | truncated
        returns.extend(info["episode_return"][done].tolist())
        success.extend(info["success"][done].tolist())
    n = len(returns)
    return {
        "episodes": n,
        "episode_return": float(np.mean(returns)) if n else math.nan,
        "success": float(np.mean(success)) if n else math.nan,
    }


def last_mean(rows: list[dict[str, float]], key: str, last: int = 10) -> float:
    """Mean of `key` over the last `last` iterations that finished episodes."""
    vals = [r[key] for r in rows if not math.isnan(r[key])][-last:]
    return sum(vals) / len(vals) if vals else math.nan


def fit_host(
    tcfg: TrainConfig,
    groups: list,
    *,
    progress: bool = True,
    echo=print,
    extra_summary: dict | None = None,
    eval_env=None,
    eval_steps: int = 0,
) -> dict[str, Any]:
    """Train tcfg against the host env groups for tcfg.num_iterations iterations; returns the summary dict.

    With eval_env and eval_steps > 0, the final policy also runs greedily (argmax) for eval_steps steps there.
    """
    log_dir = Path(tcfg.log_dir)
    echo("resolved config:\n" + tcfg.to_json())
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "config.json").write_text(tcfg.to_json() + "\n")
    trainer = HostTrainer(tcfg, groups)
    state = trainer.init()
    total = tcfg.num_iterations
    logger = RunLogger(log_dir, total, 0, progress)
    steps_per_it = tcfg.steps_per_iteration
    t_start = time.perf_counter()
    timed = {"steps": 0, "seconds": 0.0}
    try:
        for it in range(1, total + 1):
            t0 = time.perf_counter()
            state, metrics = trainer.iteration(state)
            dt = time.perf_counter() - t0
            if it > 2:  # the first two iterations compile the policy step, the truncation value and the update
                timed["steps"] += steps_per_it
                timed["seconds"] += dt
            logger.log(it, it * steps_per_it, time.perf_counter() - t_start, steps_per_it / dt, metrics)
        greedy = trainer.evaluate(state.params, eval_env, eval_steps) if eval_env is not None and eval_steps else None
    finally:
        logger.close()
        trainer.close()
    rows = read_csv(logger.csv_path)
    curve = plot_curve(logger.csv_path, log_dir / "curve.png", f"{tcfg.policy.variant} on {tcfg.env}")
    summary = {
        "iterations": total,
        "env_steps": total * steps_per_it,
        "final_episode_return": last_mean(rows, "episode_return"),
        "final_success": last_mean(rows, "success"),
        "first_episode_return": next((r["episode_return"] for r in rows if not math.isnan(r["episode_return"])), None),
        "sps": timed["steps"] / timed["seconds"] if timed["seconds"] > 0 else math.nan,
        "wall_s": time.perf_counter() - t_start,
        "timers_s": {k: trainer.timers[k] for k in TIMERS},
        "curve": str(curve),
        "greedy_eval": greedy,
        **(extra_summary or {}),
    }
    (log_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
