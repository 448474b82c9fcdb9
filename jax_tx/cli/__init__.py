"""`jax-tx`: one console script, one subcommand per job.

    jax-tx train ...     train a policy (jax_tx.cli.train)
    jax-tx eval CKPT     run episodes from a checkpoint (jax_tx.cli.eval)
    jax-tx convert SRC DST   move weights between PyTorch and Flax/orbax (jax_tx.cli.convert)
    jax-tx list          variants (sizes, parameter counts), environments, recipes (jax_tx.cli.list)
    jax-tx --version     jax_tx, jax, jaxlib, flax, optax, orbax, torch versions and the git commit
    jax-tx bench ...     JAX vs PyTorch speed per variant (jax_tx.cli.bench)

Each subcommand module has `main(argv) -> int` and is imported only when chosen.
Before that, unless the user set XLA_FLAGS, the entry point sets CPU_XLA_FLAGS (when the installed jaxlib
knows the flag: XLA aborts on unknown flags). Measured on the train step (experiments/bench_levers.py):
XLA's CPU fusion otherwise builds one huge loop fusion of the GRU-gate and LayerNorm backward chain.
"""

from __future__ import annotations

import importlib
import importlib.util
import mmap
import os
import sys
from pathlib import Path

CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=dot",)

SUBCOMMANDS = {
    "train": ("jax_tx.cli.train", "train a policy with jitted PPO"),
    "eval": ("jax_tx.cli.eval", "run episodes from a checkpoint and print return and success"),
    "convert": ("jax_tx.cli.convert", "convert weights between PyTorch and Flax/orbax"),
    "list": ("jax_tx.cli.list", "list variants (sizes, parameter counts), environments and recipes"),
    "bench": ("jax_tx.cli.bench", "time JAX vs PyTorch (train step, rollout step, whole PPO) per variant"),
}


def version_text() -> str:
    """One line: jax_tx's version, the libraries it runs on and the git commit (no jax import)."""
    from jax_tx.ppo.provenance import PACKAGES, git_commit, package_version

    commit, dirty = git_commit()
    libs = ", ".join(f"{name} {package_version(dist) or '-'}" for name, dist in PACKAGES.items())
    where = f"git {commit[:12]}{' (modified)' if dirty else ''}" if commit else "not a git checkout"
    return f"jax-tx {package_version('jax_tx') or '-'} ({libs}; {where})"


def jaxlib_knows_flag(flag: str) -> bool:
    """Whether one of the installed jaxlib's shared libraries contains the flag's name (without importing jax)."""
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or not spec.submodule_search_locations:
        return False
    name = flag.lstrip("-").split("=", 1)[0].encode()
    for lib in sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.so")):
        if lib.stat().st_size < 1 << 20:
            continue
        with lib.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if m.find(name) >= 0:
                return True
    return False


def set_default_xla_flags(environ=os.environ, modules=sys.modules) -> str | None:
    """Set XLA_FLAGS to those CPU_XLA_FLAGS jaxlib knows, unless XLA_FLAGS is set or jax is imported already."""
    if "XLA_FLAGS" in environ or "jax" in modules:
        return None
    flags = " ".join(f for f in CPU_XLA_FLAGS if jaxlib_knows_flag(f))
    if flags:
        environ["XLA_FLAGS"] = flags
    return flags or None


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
    set_default_xla_flags()
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
