"""`jax-tx train` / `python -m jax_tx.cli.train`: train a policy with jitted PPO.

    jax-tx train --variant gtrxl --env tmaze --env-kw corridor_length=8 --total-steps 300000
    jax-tx train --recipe experiments/recipes/tmaze10__gtrxl.json --log-dir runs/tmaze --learning-rate 5e-4
    jax-tx train --resume runs/tmaze                  # continue from the run's latest checkpoint

Every field of PolicyConfig, PPOConfig and TrainConfig is a flag (`--d-model`, `--clip-coef`,
`--num-envs`, ...). Precedence: built-in defaults < --recipe JSON < flags. The fully resolved
config is printed at the start and stored in LOG_DIR/config.json and in every checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from jax_tx.cli.common import parse_env_kw
from jax_tx.config import PolicyConfig, PPOConfig, TrainConfig, preset

POLICY_FIXED = ("variant", "obs_dim", "num_actions")
TRAIN_FIXED = ("policy", "ppo", "env", "env_kwargs")
DEFAULTS = {"variant": "gtrxl", "env": "tmaze"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_type(cls, f: dataclasses.Field):
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        return bool
    if isinstance(default, float):
        return float
    if isinstance(default, int):
        return int
    return str


def _add_fields(group, cls, skip) -> list[str]:
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        typ = _field_type(cls, f)
        kw = dict(dest=f"{cls.__name__}.{f.name}", default=argparse.SUPPRESS, help=f"(default {f.default!r})")
        if typ is bool:
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kw)
        else:
            group.add_argument(_flag(f.name), type=typ, metavar=typ.__name__.upper(), **kw)
        names.append(f.name)
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jax-tx train", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variant", help=f"policy variant (default {DEFAULTS['variant']})")
    p.add_argument("--size", help="policy preset size: default or metta_small")
    p.add_argument("--env", help=f"environment name (default {DEFAULTS['env']}), e.g. tmaze, gymnax:MemoryChain-bsuite")
    p.add_argument("--env-kw", action="append", default=[], metavar="KEY=VALUE", help="env kwarg (JSON value)")
    p.add_argument("--recipe", help="JSON recipe: {variant, size, env, env_kwargs, policy: {...}, ppo: {...}, ...}")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    p.add_argument("--stop-at-iteration", type=int, help="stop (and checkpoint) after this iteration")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    seen: set[str] = set()
    for cls, skip, title in (
        (TrainConfig, TRAIN_FIXED, "run"),
        (PPOConfig, (), "PPO"),
        (PolicyConfig, POLICY_FIXED, "policy"),
    ):
        names = _add_fields(p.add_argument_group(f"{title} ({cls.__name__} fields)"), cls, skip)
        clash = seen & set(names)
        assert not clash, f"flag name clash between config classes: {clash}"
        seen |= set(names)
    return p


def _overrides(args: argparse.Namespace, cls) -> dict[str, Any]:
    prefix = cls.__name__ + "."
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """defaults < recipe < flags, with obs_dim / num_actions read from the environment."""
    from jax_tx.envs import make_env
    from jax_tx.ppo.heads import policy_num_actions

    recipe: dict[str, Any] = {}
    if args.recipe:
        with open(args.recipe) as f:
            recipe = json.load(f)
    variant = args.variant or recipe.pop("variant", DEFAULTS["variant"])
    recipe.pop("variant", None)
    size = args.size or recipe.pop("size", "default")
    recipe.pop("size", None)
    env_name = args.env or recipe.pop("env", DEFAULTS["env"])
    recipe.pop("env", None)
    env_kwargs = {**recipe.pop("env_kwargs", {}), **parse_env_kw(args.env_kw, "train")}
    policy_over = {**recipe.pop("policy", {}), **_overrides(args, PolicyConfig)}
    ppo_over = {**recipe.pop("ppo", {}), **_overrides(args, PPOConfig)}
    train_over = {**recipe, **_overrides(args, TrainConfig)}
    env = make_env(env_name, **env_kwargs)
    policy = preset(variant, env.obs_dim, policy_num_actions(env, variant), size=size, **policy_over)
    return TrainConfig(policy=policy, ppo=PPOConfig(**ppo_over), env=env_name, env_kwargs=env_kwargs, **train_over)


def main(argv: list[str] | None = None) -> int:
    from jax_tx.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from jax_tx.ppo.run import fit

    try:
        if args.resume:
            given = [a for a in (argv or sys.argv[1:]) if a.startswith("--") and a.split("=")[0] not in _RESUME_OK]
            if given:
                parser.error(f"--resume takes the run's config from its checkpoint; drop {given}")
            result = fit(None, resume=args.resume, stop_at=args.stop_at_iteration, progress=not args.no_progress)
        else:
            tcfg = config_from_args(args)
            result = fit(tcfg, stop_at=args.stop_at_iteration, progress=not args.no_progress)
    except (ConfigError, ValueError) as e:
        print(f"jax-tx train: error: {e}", file=sys.stderr)
        return 2
    print(
        f"done: iteration {result.iteration}/{result.tcfg.num_iterations}, "
        f"env steps {result.iteration * result.tcfg.steps_per_iteration:,}, "
        f"final success {result.final_success:.3f}, SPS {result.sps:,.0f}, wall {result.wall_s:.1f}s"
    )
    print(f"metrics: {result.log_dir / 'metrics.csv'}  checkpoints: {result.log_dir / 'checkpoints'}")
    if result.curve is not None:
        print(f"learning curve: {result.curve}")
    return 0


_RESUME_OK = ("--resume", "--stop-at-iteration", "--no-progress")

if __name__ == "__main__":
    sys.exit(main())
