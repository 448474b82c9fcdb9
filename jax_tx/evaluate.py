"""`jax-tx eval CKPT`: run episodes with a trained policy and print mean return and success.

    jax-tx eval runs/tmaze                  # a training run directory (uses runs/tmaze/checkpoints)
    jax-tx eval runs/tmaze/checkpoints --step 200 --episodes 500 --sample
    jax-tx eval converted_ckpt --env tmaze --env-kw corridor_length=8   # a checkpoint without a train config

Each of `episodes` parallel envs plays its first episode (every episode ends by env.max_steps);
actions are greedy (argmax) unless --sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


def run_episodes(model, params, cfg, env, episodes: int, key, greedy: bool = True) -> dict[str, np.ndarray]:
    """First-episode return, success and length of `episodes` envs (arrays [episodes])."""
    from jax_tx.ppo.rollout import initial_carry, policy_step

    k_env, k_run = jax.random.split(key)
    carry = initial_carry(env, cfg, k_env, episodes)

    def step(c, k):
        carry, finished, ret, succ, length = c
        k_act, k_env = jax.random.split(k)
        logits, _, memory = policy_step(
            model, params, cfg, carry.obs, carry.reset, carry.memory, carry.prev_action, carry.prev_reward
        )
        action = jnp.argmax(logits, -1) if greedy else jax.random.categorical(k_act, logits)
        action = action.astype(jnp.int32)
        obs, env_state, reward, term, trunc, info = jax.vmap(env.step)(
            jax.random.split(k_env, episodes), carry.env_state, action
        )
        done = term | trunc
        first = done & ~finished
        ret = jnp.where(first, info["episode_return"], ret)
        succ = jnp.where(first, info["success"], succ)
        length = jnp.where(first, info["episode_length"], length)
        carry = carry.replace(
            env_state=env_state,
            obs=obs,
            reset=done,
            memory=memory,
            prev_action=jnp.where(done, -1, action),
            prev_reward=jnp.where(done, 0.0, reward),
        )
        return (carry, finished | done, ret, succ, length), None

    zeros = jnp.zeros((episodes,), jnp.float32)
    init = (carry, jnp.zeros((episodes,), bool), zeros, zeros, jnp.zeros((episodes,), jnp.int32))
    (_, finished, ret, succ, length), _ = jax.jit(lambda c, ks: jax.lax.scan(step, c, ks))(
        init, jax.random.split(k_run, env.max_steps)
    )
    return {
        "finished": np.asarray(finished),
        "return": np.asarray(ret),
        "success": np.asarray(succ),
        "length": np.asarray(length),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jax-tx eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("ckpt", help="a training run directory or an orbax checkpoint directory")
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--sample", action="store_true", help="sample actions instead of argmax")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env", help="environment (default: the one the run trained on)")
    p.add_argument("--env-kw", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from jax_tx import checkpoint
    from jax_tx.envs import make_env
    from jax_tx.policy import make_policy
    from jax_tx.train import _parse_env_kw

    path = Path(args.ckpt)
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    try:
        r = checkpoint.restore(path, args.step)
        train_cfg = r.extra_json.get("train_config", {})
        env_name = args.env or train_cfg.get("env")
        if env_name is None:
            raise ValueError(f"{path} stores no training env; pass --env NAME (and --env-kw KEY=VALUE)")
        env_kwargs = _parse_env_kw(args.env_kw) if args.env else dict(train_cfg.get("env_kwargs", {}))
        env = make_env(env_name, **env_kwargs)
        if (env.obs_dim, env.num_actions) != (r.cfg.obs_dim, r.cfg.num_actions):
            raise ValueError(
                f"env {env_name!r} has obs_dim={env.obs_dim}, num_actions={env.num_actions}; the policy expects "
                f"{r.cfg.obs_dim}, {r.cfg.num_actions}"
            )
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    except (ValueError, checkpoint.CheckpointError) as e:
        print(f"jax-tx eval: error: {e}", file=sys.stderr)
        return 2
    out = run_episodes(
        make_policy(r.cfg), r.params, r.cfg, env, args.episodes, jax.random.PRNGKey(args.seed), not args.sample
    )
    done = out["finished"]
    summary = {
        "checkpoint": str(path),
        "step": r.step,
        "variant": r.cfg.variant,
        "env": env_name,
        "episodes": int(done.sum()),
        "mean_return": float(out["return"][done].mean()) if done.any() else float("nan"),
        "success_rate": float(out["success"][done].mean()) if done.any() else float("nan"),
        "mean_length": float(out["length"][done].mean()) if done.any() else float("nan"),
        "policy": "sample" if args.sample else "greedy",
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['variant']} on {env_name} (step {r.step}, {summary['policy']}): {summary['episodes']} episodes, "
            f"return {summary['mean_return']:.3f}, success {summary['success_rate']:.3f}, "
            f"length {summary['mean_length']:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
