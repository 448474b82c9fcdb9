"""`jax-tx eval CKPT`: run episodes with a trained policy and print mean return and success.

    jax-tx eval runs/tmaze                  # a training run directory (uses runs/tmaze/checkpoints)
    jax-tx eval runs/tmaze/checkpoints --step 200 --episodes 500 --sample
    jax-tx eval converted_ckpt --env tmaze --env-kw corridor_length=8   # a checkpoint without a train config
    jax-tx eval runs/tmaze --env-kw corridor_length=40      # the training env with these kwargs changed

Without --step the newest intact step is used (a damaged newer step is named in a warning).

Each of `episodes` parallel envs plays its first episode (every episode ends by env.max_steps);
actions are greedy (argmax) unless --sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jax-tx eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("ckpt", help="a training run directory or an orbax checkpoint directory")
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--sample", action="store_true", help="sample actions instead of argmax")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env", help="environment (default: the one the run trained on)")
    p.add_argument("--env-kw", action="append", default=[], metavar="KEY=VALUE",
                   help="env kwarg (JSON value); without --env it changes the training env's kwargs")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from jax_tx.cli.common import parse_env_kw
    from jax_tx.envs import make_env
    from jax_tx.io import checkpoint, recovery
    from jax_tx.models.policy import make_policy
    from jax_tx.ppo.evaluate import run_episodes

    path = Path(args.ckpt)
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    try:
        r = recovery.restore_intact(path, args.step, warn=lambda m: print(m, file=sys.stderr))
        train_cfg = r.extra_json.get("train_config", {})
        env_name = args.env or train_cfg.get("env")
        if env_name is None:
            raise ValueError(f"{path} stores no training env; pass --env NAME (and --env-kw KEY=VALUE)")
        given = parse_env_kw(args.env_kw, "eval")
        env_kwargs = given if args.env else {**train_cfg.get("env_kwargs", {}), **given}
        try:
            env = make_env(env_name, **env_kwargs)
        except TypeError as e:
            raise ValueError(f"env {env_name!r} with {env_kwargs}: {e}") from None
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
        "env_kwargs": env_kwargs,
        "episodes": int(done.sum()),
        "mean_return": float(out["return"][done].mean()) if done.any() else float("nan"),
        "success_rate": float(out["success"][done].mean()) if done.any() else float("nan"),
        "mean_length": float(out["length"][done].mean()) if done.any() else float("nan"),
        "policy": "sample" if args.sample else "greedy",
    }
    if args.json:
        print(json.dumps({k: None if isinstance(v, float) and v != v else v for k, v in summary.items()}))
    else:
        print(
            f"{summary['variant']} on {env_name} (step {r.step}, {summary['policy']}): {summary['episodes']} episodes, "
            f"return {summary['mean_return']:.3f}, success {summary['success_rate']:.3f}, "
            f"length {summary['mean_length']:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
