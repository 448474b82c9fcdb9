"""Agent steps/s on the mettagrid arena: the env alone, a random policy, the jitted policy rollout, the whole loop.

On the recipe's arena and policy (experiments/recipes/mettagrid_arena__gtrxl.json), R rounds, each timing in turn:

  env          MettaGridVecEnv.step with fixed actions (one group of num_maps maps; the C++ sim + the adapter)
  random       the same env with uniform random actions drawn on the host each step (no device)
  rollout_g1   HostTrainer.collect (jitted policy step per env step), all rows in one group
  rollout_g2   the same rows in two groups, the env of one stepped while the policy of the other computes
  loop         HostTrainer.iteration (two groups): rollout + batch transfer + jitted PPO update

Rates are agent steps (rows x env steps) per second of wall; the median over rounds is reported, with the
whole loop's time split into env, policy (waiting for actions), transfer (host bookkeeping, stacking, moving the
batch) and update (the jitted update). Compilation happens before the first round (persistent cache
.jax_cache). Saved to experiments/results/mettagrid_bench.json.

    .venv-mettagrid/bin/python experiments/bench_mettagrid.py [--rounds 3] [--steps 128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_mettagrid import config_from_recipe  # noqa: E402

from jax_tx.ppo.host_loop import TIMERS, HostTrainer  # noqa: E402
from jax_tx.ppo.host_run import mettagrid_groups  # noqa: E402


def env_rate(env, steps: int, rng, random_actions: bool) -> float:
    """Agent steps/s of `steps` env steps."""
    env.reset()
    fixed = np.zeros(env.num_envs, np.int64)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, env.num_actions, env.num_envs) if random_actions else fixed)
    return steps * env.num_envs / (time.perf_counter() - t0)


def rollout_rate(trainer: HostTrainer, state, steps: int) -> float:
    t0 = time.perf_counter()
    rows, carries, _ = trainer.collect(state.params, list(state.carries), state.key, steps)
    state.carries[:] = carries
    return steps * trainer.tcfg.num_envs / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipe", default="experiments/recipes/mettagrid_arena__gtrxl.json")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=128, help="env steps per env / rollout measurement")
    p.add_argument("--out", default="experiments/results/mettagrid_bench.json")
    args = p.parse_args()
    import jax

    jax.config.update("jax_compilation_cache_dir", ".jax_cache")
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    with open(args.recipe) as f:
        recipe = json.load(f)
    tcfg, _ = config_from_recipe(recipe, seed=0, total_steps=None, log_dir="/tmp/bench_mettagrid")
    rng = np.random.default_rng(0)
    env = mettagrid_groups(tcfg.env_kwargs, 1, seed=11)[0]
    one_group = {**tcfg.env_kwargs, "num_maps": 2 * tcfg.env_kwargs.get("num_maps", 1)}  # the same rows
    g1 = HostTrainer(tcfg, mettagrid_groups(one_group, 1, seed=1))
    g2 = HostTrainer(tcfg, mettagrid_groups(tcfg.env_kwargs, 2, seed=2))
    s1, s2 = g1.init(), g2.init()
    t0 = time.perf_counter()
    rollout_rate(g1, s1, 2)
    rollout_rate(g2, s2, 2)
    s2, _ = g2.iteration(s2)
    compile_s = time.perf_counter() - t0
    rates: dict[str, list[float]] = {k: [] for k in ("env", "random", "rollout_g1", "rollout_g2", "loop")}
    shares: list[dict[str, float]] = []
    for _ in range(args.rounds):
        rates["env"].append(env_rate(env, args.steps, rng, random_actions=False))
        rates["random"].append(env_rate(env, args.steps, rng, random_actions=True))
        rates["rollout_g1"].append(rollout_rate(g1, s1, args.steps))
        rates["rollout_g2"].append(rollout_rate(g2, s2, args.steps))
        g2.timers = dict.fromkeys(TIMERS, 0.0)
        t0 = time.perf_counter()
        s2, _ = g2.iteration(s2)
        wall = time.perf_counter() - t0
        rates["loop"].append(tcfg.steps_per_iteration / wall)
        shares.append({k: g2.timers[k] / wall for k in TIMERS})
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared (load {os.getloadavg()[0]:.1f})",
        "versions": {"jax": jax.__version__, "python": platform.python_version(), "mettagrid": _version("mettagrid")},
        "recipe": args.recipe,
        "rows": tcfg.num_envs,
        "env_rows": env.num_envs,
        "steps_per_measurement": args.steps,
        "rounds": args.rounds,
        "compile_s": compile_s,
        "agent_steps_per_s_median": {k: statistics.median(v) for k, v in rates.items()},
        "agent_steps_per_s_rounds": rates,
        "loop_time_share_median": {k: statistics.median(s[k] for s in shares) for k in TIMERS},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("agent_steps_per_s_median", "loop_time_share_median")}, indent=2))
    for g in (g1, g2):
        g.close()
    env.close()
    return 0


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
