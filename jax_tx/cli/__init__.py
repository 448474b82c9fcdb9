"""`jax-tx`: one console script, one subcommand per job.

    jax-tx train ...     train a policy (jax_tx.cli.train)
    jax-tx eval CKPT     run episodes from a checkpoint (jax_tx.cli.eval)
    jax-tx convert SRC DST   move weights between PyTorch and Flax/orbax (jax_tx.cli.convert)
    jax-tx list          variants (sizes, parameter counts), environments, recipes (jax_tx.cli.list)
    jax-tx --version     jax_tx, jax, jaxlib, flax, optax, orbax, torch versions and the git commit

Each subcommand module has `main(argv) -> int` and is imported only when chosen.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "train": ("jax_tx.cli.train", "train a policy with jitted PPO"),
    "eval": ("jax_tx.cli.eval", "run episodes from a checkpoint and print return and success"),
    "convert": ("jax_tx.cli.convert", "convert weights between PyTorch and Flax/orbax"),
    "list": ("jax_tx.cli.list", "list variants (sizes, parameter counts), environments and recipes"),
}


def version_text() -> str:
    """One line: jax_tx's version, the libraries it runs on and the git commit (no jax import)."""
    from jax_tx.ppo.provenance import PACKAGES, git_commit, package_version

    commit, dirty = git_commit()
    libs = ", ".join(f"{name} {package_version(dist) or '-'}" for name, dist in PACKAGES.items())
    where = f"git {commit[:12]}{' (modified)' if dirty else ''}" if commit else "not a git checkout"
    return f"jax-tx {package_version('jax_tx') or '-'} ({libs}; {where})"


def usage() -> str:
    lines = ["usage: jax-tx {" + ",".join(SUBCOMMANDS) + "} [args...]", ""]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `jax-tx SUBCOMMAND --help` for its options; `jax-tx --version` for the versions."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # not list(argv): importing the subcommand module jax_tx.cli.list binds the name `list` in this namespace
    argv = sys.argv[1:] if argv is None else [*argv]
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(version_text())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"jax-tx: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
