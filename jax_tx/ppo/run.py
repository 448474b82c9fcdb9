"""The Python training loop: jitted iterations, logging, checkpoints, exact resume.

    result = fit(tcfg)                                  # a fresh run into tcfg.log_dir
    result = fit(None, resume="runs/x")                 # continue runs/x from its newest intact checkpoint
    result = fit(None, resume="runs/x", step=40)        # ... from step 40 (newer steps are moved aside)

A checkpoint holds the policy params and config plus the whole TrainState (optimizer state,
env state, observation, memory, RNG key, iteration) and the TrainConfig, so a run stopped at
iteration k and resumed reaches iteration n with the same parameters as an uninterrupted run.

Guards: one live run per log dir (LOG_DIR/.lock); checkpoints at multiples of checkpoint_every
and every checkpoint_minutes; SIGINT / SIGTERM finish the current compiled call, checkpoint and
raise Interrupted (exit 130 / 143); a non-finite value (jax_tx.ppo.guards) raises NonFiniteError
(exit 3) or skips the update; nothing non-finite is ever saved.
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
from jax_tx.io import checkpoint, recovery
from jax_tx.ppo import guards, sharding
from jax_tx.ppo.evaluate import run_episodes
from jax_tx.ppo.interrupts import Interrupted, StopSignals, signal_name
from jax_tx.ppo.logging import RunLogger, final_success, json_safe, plot_curve, read_csv
from jax_tx.ppo.provenance import provenance
from jax_tx.ppo.runlock import RunLock
from jax_tx.ppo.trainer import Trainer, TrainState

CKPT_SUBDIR = "checkpoints"
SUPERSEDED_SUBDIR = "superseded"
"""Steps newer than the one a run resumed from are moved here (never deleted)."""


class NonFiniteError(RuntimeError):
    """Training met a non-finite value with on_nonfinite='stop'; the message names iteration, value, resume."""

    exit_code = 3


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
    skipped_updates: int = 0
    status: str = "completed"


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


def state_is_finite(state: TrainState) -> bool:
    """The learned state (params and optimizer state) is finite in every floating leaf.

    The env carry is not checked: with on_nonfinite='skip' it may hold a NaN reward or observation
    that the skipped updates never learned from.
    """
    return all(
        np.isfinite(a).all()
        for a in map(np.asarray, jax.tree_util.tree_leaves((state.params, state.opt_state)))
        if np.issubdtype(a.dtype, np.inexact)
    )


def save_state(ckpt_dir: Path, tcfg: TrainConfig, state: TrainState) -> int | None:
    """Save `state` as step state.iteration (kept if that step exists); None, nothing written, if it is not finite."""
    it = int(state.iteration)
    if it in checkpoint.all_steps(ckpt_dir):
        return it
    if not state_is_finite(state):
        return None
    checkpoint.save(
        ckpt_dir,
        it,
        state.params,
        tcfg.policy,
        extra={"train_state": _state_extra(state)},
        extra_json={"train_config": tcfg.to_dict()},
    )
    return it


def restore_run(run_dir: str | Path, step: int | None = None, warn=print) -> tuple[TrainConfig, checkpoint.Restored]:
    """(TrainConfig, Restored) of `step` (None: the newest intact step, damaged newer ones named in a warning)."""
    r = recovery.restore_intact(Path(run_dir) / CKPT_SUBDIR, step, warn=warn)
    if "train_config" not in r.extra_json or "train_state" not in r.extra:
        raise checkpoint.CheckpointError(
            f"{run_dir}: checkpoint has no train_config; it was not written by jax-tx train"
        )
    return TrainConfig.from_dict(r.extra_json["train_config"]), r


def load_train_config(run_dir: str | Path, step: int | None = None) -> TrainConfig:
    return restore_run(run_dir, step)[0]


def restore_state(run_dir: str | Path, trainer: Trainer, step: int | None = None) -> TrainState:
    """The run's TrainState at `step`, restored by orbax onto trainer's shardings (any device count).

    Every leaf comes back placed like trainer.init()'s, so the first call compiles once.
    """
    template = trainer.init()
    r = checkpoint.restore(
        Path(run_dir) / CKPT_SUBDIR,
        step,
        extra_templates={"train_state": _state_extra(template)},
        params_template=template.params,
    )
    return _state_from_extra(template, r.params, r.extra["train_state"])


def output_dir(log_dir: Path) -> Path:
    """Where this process writes its logs: log_dir (process 0) or log_dir/process_k (checkpoints are shared)."""
    return log_dir if sharding.is_primary() else log_dir / f"process_{jax.process_index()}"


def check_log_dir(log_dir: Path, fresh: bool) -> None:
    """ValueError when `log_dir` cannot take this run: a file, or (fresh) it holds another run's outputs."""
    if log_dir.exists() and not log_dir.is_dir():
        raise ValueError(f"--log-dir {log_dir} is a file; choose a directory path (nothing was written)")
    if not fresh:
        return
    steps = checkpoint.all_steps(log_dir / CKPT_SUBDIR)
    if steps:
        raise checkpoint.CheckpointError(
            f"{log_dir} already holds checkpoints {steps}; continue it with --resume "
            f"{log_dir} or choose another --log-dir (nothing was overwritten)"
        )
    csv_path = output_dir(log_dir) / "metrics.csv"
    if csv_path.is_file() and len(csv_path.read_text().splitlines()) > 1:
        raise ValueError(
            f"{csv_path} holds the metrics of an earlier run that left no checkpoint; choose another --log-dir "
            f"or delete it (nothing was overwritten)"
        )


def check_stop(stop_at: int | None, start: int, total: int) -> int:
    """The iteration to stop at: num_iterations, or --stop-at-iteration (>= 1 and past the start)."""
    if stop_at is None:
        return total
    if stop_at < 1:
        raise ValueError(f"--stop-at-iteration must be >= 1, got {stop_at}")
    if stop_at <= start:
        raise ValueError(f"--stop-at-iteration {stop_at}: the run is already at iteration {start}; pass a larger one")
    return min(stop_at, total)


def next_pause(it: int, stop: int, every: int) -> int:
    """Where the compiled calls pause next: the next multiple of `every` (0: none), or `stop`."""
    return min(stop, (it // every + 1) * every) if every else stop


def supersede_newer(log_dir: Path, step: int, echo) -> None:
    """Move checkpoint steps newer than `step` to LOG_DIR/superseded/ (a resume from `step` rewrites them)."""
    newer = [s for s in checkpoint.all_steps(log_dir / CKPT_SUBDIR) if s > step]
    if not newer:
        return
    dest = log_dir / SUPERSEDED_SUBDIR / time.strftime("%Y%m%d-%H%M%S")
    dest.mkdir(parents=True, exist_ok=True)
    for s in newer:
        (log_dir / CKPT_SUBDIR / str(s)).rename(dest / str(s))
    echo(f"warning: resuming from step {step}: moved the newer steps {newer} to {dest}")


def write_config(log_dir: Path, tcfg: TrainConfig) -> None:
    (log_dir / "config.json").write_text(json.dumps({**tcfg.to_dict(), "provenance": provenance()}, indent=2) + "\n")


def fit(
    tcfg: TrainConfig | None,
    *,
    resume: str | Path | None = None,
    step: int | None = None,
    stop_at: int | None = None,
    progress: bool = True,
    echo=print,
    overrides: dict | None = None,
    devices: int | None = None,
) -> RunResult:
    """Train tcfg (or resume the run in `resume`, at `step`) up to num_iterations (or `stop_at`).

    `overrides` (resume only) replaces TrainConfig fields that do not change the run's numbers,
    e.g. {"on_nonfinite": "skip"}. Raises ValueError / CheckpointError / RunLocked before writing
    anything, NonFiniteError on a non-finite value (on_nonfinite='stop'), Interrupted on a signal.
    `devices` (resume) trains the resumed run on another device count. With several processes every
    process calls fit; process 0 writes the logs into log_dir, process k into log_dir/process_k.
    """
    RunLock(output_dir(Path(tcfg.log_dir if resume is None else resume))).check()  # a live run there: refuse first
    restored = None
    if resume is not None:
        tcfg, restored = restore_run(resume, step, warn=echo)
        tcfg = tcfg.replace(
            log_dir=str(resume), **(overrides or {}), **({} if devices is None else {"devices": devices})
        )
    log_dir = Path(tcfg.log_dir)
    check_log_dir(log_dir, fresh=resume is None)
    start = 0 if restored is None else restored.step
    stop = check_stop(stop_at, start, tcfg.num_iterations)
    with RunLock(output_dir(log_dir), warn=echo), StopSignals(echo) as signals:
        if restored is not None and sharding.is_primary():
            supersede_newer(log_dir, restored.step, echo)
        return _fit_locked(tcfg, restored, stop, progress, echo, signals)


def _fit_locked(tcfg: TrainConfig, restored, stop: int, progress: bool, echo, signals: StopSignals) -> RunResult:
    log_dir = Path(tcfg.log_dir)
    ckpt_dir = log_dir / CKPT_SUBDIR
    total, steps_per_it, ipc = tcfg.num_iterations, tcfg.steps_per_iteration, tcfg.iterations_per_call
    echo("resolved config:\n" + tcfg.to_json())
    if tcfg.total_steps != total * steps_per_it:
        echo(f"note: total_steps={tcfg.total_steps:,} is not a multiple of num_envs*rollout_steps={steps_per_it}: "
             f"training {total} iterations = {total * steps_per_it:,} env steps")  # fmt: skip
    out_dir = output_dir(log_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_config(out_dir, tcfg)
    trainer = Trainer(tcfg)
    mesh = trainer.placement.mesh
    per_device = tcfg.num_envs // mesh.size
    echo(f"mesh: {mesh.size} device(s) over {jax.process_count()} process(es), {per_device} envs per device")
    if restored is None:
        state = trainer.init()
    else:
        state = restore_state(log_dir, trainer, restored.step)
        echo(f"resumed {log_dir} at iteration {restored.step} of {total}")
    start = int(state.iteration)
    logger = RunLogger(out_dir, total, start, progress)
    prev_rows = read_csv(logger.csv_path) if start > 0 else []
    wall0 = prev_rows[-1]["wall_s"] if prev_rows else 0.0
    t_start = last_save = time.perf_counter()
    timing = {"steps": 0, "seconds": 0.0, "skipped": 0}
    status = "completed" if stop == total else f"stopped at iteration {stop} (--stop-at-iteration)"

    def log_rows(first_it: int, metrics: dict, n: int, sps: float) -> None:
        wall = wall0 + time.perf_counter() - t_start
        for j in range(n):
            it = first_it + j + 1
            logger.log(it, it * steps_per_it, wall, sps, {k: float(v[j]) for k, v in metrics.items()})

    try:
        while int(state.iteration) < stop and signals.signum is None:
            it = int(state.iteration)
            fn = trainer.run if next_pause(it, stop, tcfg.checkpoint_every) - it >= ipc else trainer.run_one
            cached = fn._cache_size()
            if cached == 0:
                logger.note("compiling the training step (first call; the SPS and ETA are timed after it)...")
            t0 = time.perf_counter()
            new, metrics = fn(state)
            metrics = jax.tree_util.tree_map(np.asarray, jax.block_until_ready(metrics))
            dt = time.perf_counter() - t0
            compiled = fn._cache_size() > cached
            n = len(metrics["loss"])
            if not compiled:  # SPS excludes calls that compiled
                timing["steps"] += n * steps_per_it
                timing["seconds"] += dt
            if compiled:
                logger.restart_clock(pending=n)
            bad = guards.first_bad(metrics["nonfinite"])
            if bad is not None and tcfg.on_nonfinite == "stop":
                log_rows(it, metrics, bad + 1, n * steps_per_it / dt)
                raise _nonfinite_stop(tcfg, state, it + bad + 1, metrics["nonfinite"][bad], ckpt_dir)
            log_rows(it, metrics, n, n * steps_per_it / dt)
            if bad is not None:
                codes = metrics["nonfinite"]
                timing["skipped"] += int((codes != 0).sum())
                logger.note(f"warning: iteration {it + bad + 1}: non-finite {guards.describe(codes[bad])}; update "
                            f"skipped ({timing['skipped']} so far, on_nonfinite=skip)")  # fmt: skip
            state = new
            it = int(state.iteration)
            every, minutes = tcfg.checkpoint_every, tcfg.checkpoint_minutes
            if (every and it % every == 0) or (minutes and time.perf_counter() - last_save >= 60 * minutes):
                save_state(ckpt_dir, tcfg, state)
                last_save = time.perf_counter()
    finally:
        logger.close()
    saved = save_state(ckpt_dir, tcfg, state)
    if signals.signum is not None:
        status = f"interrupted by {signal_name(signals.signum)} at iteration {int(state.iteration)}"
    result = _finish(tcfg, trainer, state, timing, wall0 + time.perf_counter() - t_start, status, echo)
    if signals.signum is not None:
        where = f"checkpoint step {saved} saved" if saved is not None else "no finite state to save"
        raise Interrupted(
            signals.signum,
            f"{status}/{total}; {where} in {ckpt_dir}; metrics and TensorBoard flushed; "
            f"resume with: jax-tx train --resume {log_dir}",
        )
    return result


def _nonfinite_stop(tcfg: TrainConfig, before: TrainState, iteration: int, code, ckpt_dir: Path) -> NonFiniteError:
    """Save the finite state from before the failing call, and the error that says how to go on."""
    save_state(ckpt_dir, tcfg, before)
    last = checkpoint.latest_step(ckpt_dir)
    log_dir = Path(tcfg.log_dir)
    where = (
        f"the last finite checkpoint is step {last}; resume with: jax-tx train --resume {log_dir} "
        f"(add --on-nonfinite skip to drop such updates)"
        if last is not None
        else "no finite checkpoint exists"
    )
    summary = {"status": f"stopped: non-finite {guards.describe(code)} at iteration {iteration}", "iteration": last}
    (output_dir(log_dir) / "summary.json").write_text(
        json.dumps(json_safe({**summary, "provenance": provenance()}), indent=2)
    )
    return NonFiniteError(
        f"iteration {iteration}: non-finite {guards.describe(code)} (on_nonfinite=stop); nothing non-finite was "
        f"saved; {where}"
    )


def _finish(tcfg: TrainConfig, trainer: Trainer, state: TrainState, timing: dict, wall: float, status: str, echo):
    """Curve, greedy eval (not after an interrupt) and summary.json (strict JSON: NaN -> null)."""
    log_dir = Path(tcfg.log_dir)
    out_dir = output_dir(log_dir)
    csv_path = out_dir / "metrics.csv"
    rows = read_csv(csv_path)
    title = f"{tcfg.policy.variant} on {tcfg.env}"
    curve = plot_curve(csv_path, out_dir / "curve.png", title) if rows else None
    sps = timing["steps"] / timing["seconds"] if timing["seconds"] > 0 else math.nan
    result = RunResult(
        tcfg=tcfg,
        state=state,
        iteration=int(state.iteration),
        final_success=final_success(rows),
        sps=sps,
        wall_s=wall,
        log_dir=log_dir,
        curve=curve,
        skipped_updates=timing["skipped"],
        status=status,
    )
    summary = {
        "status": status,
        "iteration": result.iteration,
        "env_steps": result.iteration * tcfg.steps_per_iteration,
        "final_success": result.final_success,
        "sps": result.sps,
        "wall_s": result.wall_s,
        "skipped_updates": result.skipped_updates,
    }
    if tcfg.eval_episodes > 0 and not status.startswith("interrupted"):
        params, key = sharding.to_host((state.params, state.key), trainer.placement)  # each process on its own
        ev = run_episodes(trainer.model, params, tcfg.policy, trainer.env, tcfg.eval_episodes, key)
        done = ev["finished"]
        summary["eval_greedy_success"] = float(ev["success"][done].mean()) if done.any() else math.nan
        summary["eval_greedy_return"] = float(ev["return"][done].mean()) if done.any() else math.nan
        echo(
            f"greedy eval over {int(done.sum())} episodes: return {summary['eval_greedy_return']:.3f}, "
            f"success {summary['eval_greedy_success']:.3f}"
        )
    summary["provenance"] = provenance()
    (out_dir / "summary.json").write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n")
    return result
