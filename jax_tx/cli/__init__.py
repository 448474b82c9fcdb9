"""`jax-tx`: one console script, one subcommand per job.

    jax-tx train ...     train a policy (jax_tx.cli.train)
    jax-tx eval CKPT     run episodes from a checkpoint (jax_tx.cli.eval)
    jax-tx convert SRC DST   move weights between PyTorch and Flax/orbax (jax_tx.cli.convert)

Each subcommand module has `main(argv) -> int` and is imported only when chosen.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "train": ("jax_tx.cli.train", "train a policy with jitted PPO"),
    "eval": ("jax_tx.cli.eval", "run episodes from a checkpoint and print return and success"),
    "convert": ("jax_tx.cli.convert", "convert weights between PyTorch and Flax/orbax"),
}


def usage() -> str:
    lines = ["usage: jax-tx {" + ",".join(SUBCOMMANDS) + "} [args...]", ""]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `jax-tx SUBCOMMAND --help` for its options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"jax-tx: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
