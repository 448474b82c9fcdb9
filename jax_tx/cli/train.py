"""`jax-tx train` / `python -m jax_tx.cli.train`: train a policy with jitted PPO.

    jax-tx train --variant gtrxl --env tmaze --env-kw corridor_length=8 --total-steps 300000
    jax-tx train --recipe experiments/recipes/tmaze10__gtrxl.json --log-dir runs/tmaze --learning-rate 5e-4
    jax-tx train --resume runs/tmaze                  # continue from the run's newest intact checkpoint
    jax-tx train --resume runs/tmaze --step 40        # ... from step 40 (newer steps are moved aside)
    jax-tx train --devices 1 ...                      # one device (default 0: every visible device)
    jax-tx train --coordinator-address HOST0:1234 --num-processes 2 --process-id K ...   # on each host K

Every field of PolicyConfig, PPOConfig and TrainConfig is a flag (`--d-model`, `--clip-coef`,
`--num-envs`, ...). Precedence: built-in defaults < --recipe JSON < flags. The fully resolved
config is printed at the start and stored in LOG_DIR/config.json and in every checkpoint.
Policy fields default to the chosen variant's preset (`jax-tx list variants` shows them); the
presets are full size (trxl: 256 wide, 6 layers): on a laptop CPU pass smaller widths (see README).

Ctrl-C / SIGTERM finish the current compiled call, checkpoint and exit 130 / 143 printing the
resume command. Exit codes: 0 done, 2 a user error (one line, nothing written), 3 a non-finite
value (--on-nonfinite stop), 130 / 143 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from jax_tx.cli.common import parse_env_kw
from jax_tx.config import VARIANTS, PolicyConfig, PPOConfig, TrainConfig, preset
from jax_tx.config.recipe import check_fields, load_recipe

POLICY_FIXED = ("variant", "obs_dim", "num_actions")
TRAIN_FIXED = ("policy", "ppo", "env", "env_kwargs")
DEFAULTS = {"variant": "gtrxl", "env": "tmaze"}
DISTRIBUTED_FLAGS = ("--coordinator-address", "--num-processes", "--process-id")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_type(cls, f: dataclasses.Field):
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        return bool
    if isinstance(default, tuple):
        return _json_tuple
    if isinstance(default, float):
        return float
    if isinstance(default, int):
        return int
    return str


def _json_tuple(text: str) -> tuple:
    """A tuple flag given as a JSON list, e.g. --token-value-norms '[1, 255, 30]'."""
    value = json.loads(text)
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError(f"expected a JSON list such as [1, 2.5], got {text!r}")
    return tuple(value)


_json_tuple.__name__ = "json_list"


def _add_fields(group, cls, skip) -> list[str]:
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        typ = _field_type(cls, f)
        default = "from the variant's preset" if cls is PolicyConfig else f"{f.default!r}"
        kw = dict(dest=f"{cls.__name__}.{f.name}", default=argparse.SUPPRESS, help=f"(default {default})")
        if typ is bool:
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kw)
        else:
            group.add_argument(_flag(f.name), type=typ, metavar=typ.__name__.upper(), **kw)
        names.append(f.name)
    return names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2 (the full usage would be every config field)
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jax-tx train", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variant", help=f"policy variant (default {DEFAULTS['variant']}): {', '.join(VARIANTS)}")
    p.add_argument("--size", help="policy preset size: default or metta_small")
    examples = "tmaze, gymnax:MemoryChain-bsuite, xminigrid:MiniGrid-MemoryS8"
    p.add_argument("--env", help=f"environment name (default {DEFAULTS['env']}), e.g. {examples}")
    p.add_argument("--env-kw", action="append", default=[], metavar="KEY=VALUE", help="env kwarg (JSON value)")
    p.add_argument("--recipe", help="JSON recipe: {variant, size, env, env_kwargs, policy: {...}, ppo: {...}, ...}")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its newest intact checkpoint")
    p.add_argument("--step", type=int, help="with --resume: the checkpoint step to continue from")
    p.add_argument("--stop-at-iteration", type=int, help="stop (and checkpoint) after this iteration (>= 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    dist = p.add_argument_group("several processes (jax.distributed; flags override the env vars)")
    dist.add_argument(
        "--coordinator-address", metavar="HOST:PORT", help="process 0's address (JAX_COORDINATOR_ADDRESS)"
    )
    dist.add_argument("--num-processes", type=int, metavar="INT", help="number of processes (JAX_NUM_PROCESSES)")
    dist.add_argument("--process-id", type=int, metavar="INT", help="this process, 0 .. n-1 (JAX_PROCESS_ID)")
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

    recipe: dict[str, Any] = dict(load_recipe(args.recipe)) if args.recipe else {}
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
    check_fields(PolicyConfig, policy_over, "policy", POLICY_FIXED)
    check_fields(TrainConfig, train_over, "run", TRAIN_FIXED)
    try:
        env = make_env(env_name, **env_kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--env {env_name} with env_kwargs {env_kwargs}: {e}") from None
    policy = preset(variant, env.obs_dim, policy_num_actions(env, variant), size=size, **policy_over)
    return TrainConfig(policy=policy, ppo=PPOConfig(**ppo_over), env=env_name, env_kwargs=env_kwargs, **train_over)


def _fmt_sps(sps: float) -> str:
    return f"{sps:,.0f}" if sps == sps else "n/a (every call compiled)"


def main(argv: list[str] | None = None) -> int:
    from jax_tx.config import ConfigError

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    from jax_tx.ppo import sharding
    from jax_tx.ppo.interrupts import Interrupted
    from jax_tx.ppo.run import NonFiniteError, fit

    kw = dict(stop_at=args.stop_at_iteration, progress=not args.no_progress)
    try:
        sharding.initialize_distributed(
            sharding.distributed_settings(args.coordinator_address, args.num_processes, args.process_id)
        )
        if args.resume:
            given = [a for a in argv if a.startswith("--") and a.split("=")[0] not in _RESUME_OK]
            if given:
                parser.error(f"--resume takes the run's config from its checkpoint; drop {given}")
            over = _overrides(args, TrainConfig)
            devices = over.pop("devices", None)
            result = fit(None, resume=args.resume, step=args.step, overrides=over, devices=devices, **kw)
        else:
            if args.step is not None:
                parser.error("--step picks the checkpoint to continue from; use it with --resume DIR")
            result = fit(config_from_args(args), **kw)
    except (ConfigError, ValueError) as e:  # CheckpointError and RunLocked are ValueErrors
        print(f"jax-tx train: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:
        print(f"jax-tx train: error: {e}", file=sys.stderr)
        return NonFiniteError.exit_code
    except Interrupted as e:
        print(f"jax-tx train: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C
        print("jax-tx train: interrupted; nothing more was saved (the run's checkpoints, if any, are intact)",
              file=sys.stderr)  # fmt: skip
        return 130
    print(
        f"done: iteration {result.iteration}/{result.tcfg.num_iterations}, "
        f"env steps {result.iteration * result.tcfg.steps_per_iteration:,}, "
        f"final success {result.final_success:.3f}, SPS {_fmt_sps(result.sps)}, wall {result.wall_s:.1f}s"
        + (f", {result.skipped_updates} updates skipped (non-finite)" if result.skipped_updates else "")
    )
    print(f"metrics: {result.log_dir / 'metrics.csv'}  checkpoints: {result.log_dir / 'checkpoints'}")
    if result.curve is not None:
        print(f"learning curve: {result.curve}")
    return 0


_RESUME_OK = ("--resume", "--step", "--stop-at-iteration", "--no-progress", "--on-nonfinite", "--devices")
_RESUME_OK += DISTRIBUTED_FLAGS

if __name__ == "__main__":
    sys.exit(main())
