"""`jax-tx list`: the variants (preset sizes, parameter counts), environments and recipes.

    jax-tx list                 everything
    jax-tx list variants        one line per variant and size: widths and parameter count on T-Maze
    jax-tx list envs | recipes

Parameter counts are for the T-Maze observation (obs_dim 4, 3 actions; the slot variant: 4 base
features and 3 slots of 3) and come from jax.eval_shape, so nothing is allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

RECIPE_DIR = Path(__file__).resolve().parents[2] / "experiments" / "recipes"
ATTENTION = ("d_model", "num_layers", "num_heads", "d_ff")
SIZE_FIELDS = {"gtrxl": ATTENTION + ("memory_len",), "trxl": ATTENTION + ("memory_len",),
               "trxl_nvidia": ATTENTION + ("memory_len",), "sliding": ATTENTION + ("max_cache_size",),
               "slot": ATTENTION + ("lstm_width",), "lstm": ("lstm_width",), "gru": ("lstm_width",),
               "mlp": ("d_model",)}  # fmt: skip
AGALITE_FIELDS = ATTENTION + ("head_dim", "eta", "num_oscillators")


def size_fields(variant: str) -> tuple[str, ...]:
    """The config fields that set a variant's size (the ones `jax-tx list` shows)."""
    return SIZE_FIELDS.get(variant, AGALITE_FIELDS)


def count_params(cfg) -> int:
    """Number of parameters of make_policy(cfg) (shapes only, via eval_shape)."""
    import jax
    import numpy as np

    from jax_tx.models.policy import example_inputs, make_policy

    model = make_policy(cfg)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *example_inputs(cfg)))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))


def variant_rows() -> list[dict]:
    from jax_tx.config import METTA_SMALL, VARIANTS, preset

    rows = []
    for variant in VARIANTS:
        for size in ("default", *(("metta_small",) if variant in METTA_SMALL else ())):
            extra = dict(base_dim=4, slot_dim=3) if variant == "slot" else {}
            obs_dim = 4 + 3 * 3 if variant == "slot" else 4
            cfg = preset(variant, obs_dim, 3, size=size, **extra)
            widths = {k: getattr(cfg, k) for k in size_fields(variant)}
            rows.append({"variant": variant, "size": size, **widths, "params": count_params(cfg)})
    return rows


def env_rows() -> list[dict]:
    from jax_tx.envs import ENV_NAMES, NATIVE_ENVS

    rows = []
    for name in ENV_NAMES:
        doc = (NATIVE_ENVS[name].__doc__ or "").strip().splitlines() if name in NATIVE_ENVS else []
        library = name.split(":")[0]
        about = doc[0] if doc else f"{library} env (any {library} id works as {library}:<id>)"
        rows.append({"env": name, "about": about})
    return rows


def recipe_rows(directory: Path = RECIPE_DIR) -> list[dict]:
    rows = []
    for path in sorted(directory.glob("*.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(r, dict):
            rows.append({"recipe": os.path.relpath(path), "variant": r.get("variant", "gtrxl"),
                         "env": r.get("env", "tmaze"), "total_steps": r.get("total_steps")})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jax-tx list", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", nargs="?", choices=("variants", "envs", "recipes"), help="one section only")
    p.add_argument("--json", action="store_true", help="one JSON object")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    sections = {"variants": variant_rows, "envs": env_rows, "recipes": recipe_rows}
    chosen = [args.what] if args.what else list(sections)
    out = {name: sections[name]() for name in chosen}
    if args.json:
        print(json.dumps(out))
        return 0
    for name, rows in out.items():
        print(f"{name}:")
        for row in rows:
            if name == "variants":
                w = ", ".join(f"{k} {row[k]}" for k in size_fields(row["variant"]))
                print(f"  {row['variant']:<18} {row['size']:<12} {row['params']:>11,} params  {w}")
            elif name == "envs":
                print(f"  {row['env']:<28} {row['about']}")
            else:
                steps = f"{row['total_steps']:,} steps" if isinstance(row["total_steps"], int) else ""
                print(f"  {row['recipe']:<52} {row['variant']:<14} {row['env']:<16} {steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
