"""Train a token-encoder memory policy on the small mettagrid arena (jax_tx/envs/mettagrid_arena.py).

    .venv-mettagrid/bin/python experiments/train_mettagrid.py --recipe experiments/recipes/mettagrid_arena__gtrxl.json

The recipe is `jax-tx train`'s format plus "num_groups" (env groups stepped alternately, jax_tx/ppo/host_loop.py);
env_kwargs are MettaGridVecEnv's (num_maps per group, arena_config kwargs). num_envs (rows) = num_groups *
num_maps * num_agents. Prints progress like `make train`, then the final episode return against a uniform-random
policy's on the same arena; LOG_DIR/summary.json keeps both. Needs `make install-mettagrid`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from jax_tx.config import PPOConfig, TrainConfig, preset
from jax_tx.ppo.host_run import fit_host, mettagrid_groups, random_policy_returns


def config_from_recipe(recipe: dict, seed: int, total_steps: int | None, log_dir: str) -> tuple[TrainConfig, int]:
    """(TrainConfig, num_groups) from a recipe; the policy's token fields come from the env."""
    recipe = dict(recipe)
    num_groups = int(recipe.pop("num_groups", 2))
    env_kwargs = recipe.pop("env_kwargs", {})
    groups = mettagrid_groups(env_kwargs, 1, seed)
    env = groups[0]
    policy = preset(recipe.pop("variant"), **{**env.policy_overrides(), **recipe.pop("policy", {})})
    env.close()
    recipe.pop("env", None)
    ppo = PPOConfig(**recipe.pop("ppo", {}))
    if total_steps is not None:
        recipe["total_steps"] = total_steps
    tcfg = TrainConfig(
        policy=policy,
        ppo=ppo,
        env="mettagrid",
        env_kwargs=env_kwargs,
        num_envs=num_groups * env.num_envs,
        seed=seed,
        log_dir=log_dir,
        **recipe,
    )
    return tcfg, num_groups


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipe", default="experiments/recipes/mettagrid_arena__gtrxl.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, help="agent steps (all rows); default the recipe's")
    p.add_argument("--log-dir", default=f"runs/mettagrid-{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("--random-steps", type=int, default=1280, help="env steps of the random-policy baseline")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-eval", dest="eval", action="store_false", help="skip the greedy evaluation at the end")
    p.add_argument("--compile-cache", default=".jax_cache", help="persistent XLA cache dir ('' to disable)")
    args = p.parse_args(argv)
    if args.compile_cache:  # seeds after the first reuse the compiled policy step and update
        import jax

        jax.config.update("jax_compilation_cache_dir", args.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    with open(args.recipe) as f:
        recipe = json.load(f)
    try:
        tcfg, num_groups = config_from_recipe(recipe, args.seed, args.total_steps, args.log_dir)
    except ValueError as e:
        print(f"train_mettagrid: error: {e}", file=sys.stderr)
        return 2
    baseline_env = mettagrid_groups(tcfg.env_kwargs, 1, args.seed + 7919)[0]
    baseline = random_policy_returns(baseline_env, args.random_steps, args.seed)
    baseline_env.close()
    groups = mettagrid_groups(tcfg.env_kwargs, num_groups, args.seed)
    eval_env = mettagrid_groups(tcfg.env_kwargs, 1, args.seed + 7919)[0]  # the random baseline's maps
    s = fit_host(
        tcfg,
        groups,
        progress=not args.no_progress,
        extra_summary={"random_policy": baseline},
        eval_env=eval_env,
        eval_steps=args.random_steps if args.eval else 0,
    )
    eval_env.close()
    print(
        f"done: {s['iterations']} iterations, {s['env_steps']:,} agent steps, episode return "
        f"{s['final_episode_return']:.3f} (first iteration {s['first_episode_return']:.3f}; random policy "
        f"{baseline['episode_return']:.3f} over {baseline['episodes']} episodes), SPS {s['sps']:,.0f}, "
        f"wall {s['wall_s']:.1f}s"
    )
    if s["greedy_eval"]:
        g = s["greedy_eval"]
        print(
            f"greedy policy: episode return {g['episode_return']:.3f}, success {g['success']:.3f} "
            f"over {g['episodes']} episodes"
        )
    timers = ", ".join(f"{k} {v:.1f}s" for k, v in s["timers_s"].items())
    print(f"time: {timers}; metrics: {tcfg.log_dir}/metrics.csv  curve: {s['curve']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
