"""The Python training loop: jitted iterations, logging, checkpoints, exact resume.

    result = fit(tcfg)                                  # a fresh run into tcfg.log_dir
    result = fit(None, resume="runs/x")                 # continue runs/x from its latest checkpoint

A checkpoint holds the policy params and config plus the whole TrainState (optimizer state,
env state, observation, memory, RNG key, iteration) and the TrainConfig, so a run stopped at
iteration k and resumed reaches iteration n with the same parameters as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import numpy as np

from jax_tx.config import TrainConfig
from jax_tx.io import checkpoint
from jax_tx.ppo import sharding
from jax_tx.ppo.evaluate import run_episodes
from jax_tx.ppo.logging import RunLogger, final_success, plot_curve, read_csv
from jax_tx.ppo.trainer import Trainer, TrainState

CKPT_SUBDIR = "checkpoints"


@dataclasses.dataclass
class RunResult:
    tcfg: TrainConfig
    state: TrainState
    iteration: int
    final_success: float
    sps: float
    wall_s: float
    log_dir: Path
    curve: Path | None


def _state_extra(state: TrainState) -> dict:
    """The non-param TrainState as {"leaf_00000": array, ...} (flattened: robust to custom pytree nodes).

    Zero-size leaves (e.g. the mlp's placeholder memory) are left out: orbax cannot save them and
    the template rebuilds them. Leaves stay jax arrays, so orbax writes each process's shards.
    """
    rest = (state.opt_state, state.carry, state.key, state.iteration)
    leaves = jax.tree_util.tree_leaves(rest)
    return {f"leaf_{i:05d}": x for i, x in enumerate(leaves) if np.size(x) > 0}


def _state_from_extra(template: TrainState, params, flat: dict) -> TrainState:
    """Inverse of _state_extra; `flat` was restored onto the template's shardings and dtypes."""
    rest = (template.opt_state, template.carry, template.key, template.iteration)
    leaves, treedef = jax.tree_util.tree_flatten(rest)
    wanted = [f"leaf_{i:05d}" for i, t in enumerate(leaves) if np.size(t) > 0]
    if sorted(flat) != wanted:
        raise checkpoint.CheckpointError(
            f"checkpoint train state has {len(flat)} arrays, this config expects {len(wanted)}; "
            f"resume with the jax_tx version and config that wrote it"
        )
    restored = [flat[f"leaf_{i:05d}"] if np.size(t) > 0 else t for i, t in enumerate(leaves)]
    opt_state, carry, key, iteration = jax.tree_util.tree_unflatten(treedef, restored)
    return TrainState(params=params, opt_state=opt_state, carry=carry, key=key, iteration=iteration)


def save_state(ckpt_dir: Path, tcfg: TrainConfig, state: TrainState) -> int:
    it = int(state.iteration)
    if it in checkpoint.all_steps(ckpt_dir):
        return it
    checkpoint.save(
        ckpt_dir,
        it,
        state.params,
        tcfg.policy,
        extra={"train_state": _state_extra(state)},
        extra_json={"train_config": tcfg.to_dict()},
    )
    return it


def load_train_config(run_dir: str | Path, step: int | None = None) -> TrainConfig:
    r = checkpoint.restore(Path(run_dir) / CKPT_SUBDIR, step)
    if "train_config" not in r.extra_json:
        raise checkpoint.CheckpointError(
            f"{run_dir}: checkpoint has no train_config; it was not written by jax-tx train"
        )
    return TrainConfig.from_dict(r.extra_json["train_config"])


def restore_state(run_dir: str | Path, trainer: Trainer, step: int | None = None) -> TrainState:
    """The run's TrainState, restored by orbax onto trainer's shardings (any device count)."""
    template = trainer.init()
    r = checkpoint.restore(
        Path(run_dir) / CKPT_SUBDIR,
        step,
        extra_templates={"train_state": _state_extra(template)},
        params_template=template.params,
    )
    return _state_from_extra(template, r.params, r.extra["train_state"])


def _run_blocks(trainer: Trainer, state: TrainState, stop: int, on_metrics):
    """Advance to iteration `stop`: full lax.scan blocks, then single iterations for any remainder."""
    ipc = trainer.tcfg.iterations_per_call
    while int(state.iteration) < stop:
        remaining = stop - int(state.iteration)
        fn = trainer.run if remaining >= ipc else trainer.run_one
        compiled = fn._cache_size() > 0
        t0 = time.perf_counter()
        state, metrics = fn(state)
        metrics = jax.tree_util.tree_map(np.asarray, jax.block_until_ready(metrics))
        on_metrics(state, metrics, time.perf_counter() - t0, compiled)
    return state


def fit(
    tcfg: TrainConfig | None,
    *,
    resume: str | Path | None = None,
    stop_at: int | None = None,
    progress: bool = True,
    echo=print,
    devices: int | None = None,
) -> RunResult:
    """Train tcfg (or resume the run in `resume`, on `devices` if given) up to num_iterations (or `stop_at`).

    With several processes every process calls fit; process 0 writes the logs into log_dir, process k
    into log_dir/process_k; checkpoints are shared (log_dir/checkpoints).
    """
    if resume is not None:
        tcfg = load_train_config(resume)
        tcfg = tcfg.replace(log_dir=str(resume), **({} if devices is None else {"devices": devices}))
    log_dir = Path(tcfg.log_dir)
    ckpt_dir = log_dir / CKPT_SUBDIR
    if resume is None and checkpoint.all_steps(ckpt_dir):
        raise checkpoint.CheckpointError(
            f"{log_dir} already holds checkpoints {checkpoint.all_steps(ckpt_dir)}; continue it with --resume "
            f"{log_dir} or choose another --log-dir (nothing was overwritten)"
        )
    echo("resolved config:\n" + tcfg.to_json())
    out_dir = log_dir if sharding.is_primary() else log_dir / f"process_{jax.process_index()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(tcfg.to_json() + "\n")
    trainer = Trainer(tcfg)
    mesh = trainer.placement.mesh
    per_device = tcfg.num_envs // mesh.size
    echo(f"mesh: {mesh.size} device(s) over {jax.process_count()} process(es), {per_device} envs per device")
    state = restore_state(resume, trainer) if resume is not None else trainer.init()
    start = int(state.iteration)
    total = tcfg.num_iterations
    stop = total if stop_at is None else min(stop_at, total)
    if resume is not None:
        echo(f"resumed {log_dir} at iteration {start} of {total}")
    logger = RunLogger(out_dir, total, start, progress)
    prev_rows = read_csv(logger.csv_path) if start > 0 else []
    wall0 = prev_rows[-1]["wall_s"] if prev_rows else 0.0
    t_start = time.perf_counter()
    timing = {"steps": 0, "seconds": 0.0}
    steps_per_it = tcfg.steps_per_iteration

    def on_metrics(st: TrainState, metrics, dt: float, compiled: bool):
        n = len(metrics["loss"])
        first_it = int(st.iteration) - n
        sps = n * steps_per_it / dt
        if compiled:  # SPS excludes calls that compiled
            timing["steps"] += n * steps_per_it
            timing["seconds"] += dt
        wall = wall0 + time.perf_counter() - t_start
        for j in range(n):
            it = first_it + j + 1
            logger.log(it, it * steps_per_it, wall, sps, {k: float(v[j]) for k, v in metrics.items()})
        every = tcfg.checkpoint_every
        if every and (int(st.iteration) // every) > (first_it // every):
            save_state(ckpt_dir, tcfg, st)

    try:
        state = _run_blocks(trainer, state, stop, on_metrics)
    finally:
        logger.close()
    save_state(ckpt_dir, tcfg, state)
    rows = read_csv(logger.csv_path)
    curve = plot_curve(logger.csv_path, out_dir / "curve.png", f"{tcfg.policy.variant} on {tcfg.env}") if rows else None
    sps = timing["steps"] / timing["seconds"] if timing["seconds"] > 0 else math.nan
    result = RunResult(
        tcfg=tcfg,
        state=state,
        iteration=int(state.iteration),
        final_success=final_success(rows),
        sps=sps,
        wall_s=wall0 + time.perf_counter() - t_start,
        log_dir=log_dir,
        curve=curve,
    )
    summary = {
        "iteration": result.iteration,
        "env_steps": result.iteration * steps_per_it,
        "final_success": result.final_success,
        "sps": result.sps,
        "wall_s": result.wall_s,
    }
    if tcfg.eval_episodes > 0:
        # local copies: each process evaluates on its own
        params, key = sharding.to_host((state.params, state.key), trainer.placement)
        ev = run_episodes(trainer.model, params, tcfg.policy, trainer.env, tcfg.eval_episodes, key)
        done = ev["finished"]
        summary["eval_greedy_success"] = float(ev["success"][done].mean()) if done.any() else math.nan
        summary["eval_greedy_return"] = float(ev["return"][done].mean()) if done.any() else math.nan
        echo(
            f"greedy eval over {int(done.sum())} episodes: return {summary['eval_greedy_return']:.3f}, "
            f"success {summary['eval_greedy_success']:.3f}"
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result
