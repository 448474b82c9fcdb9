"""Measure JAX-vs-PyTorch parity for every variant and save the numbers.

For each variant (small widths, the variant's own structure): convert random torch
weights to flax, run the same observations with resets through both twins for three
chunks carrying memory, and record the max-abs difference of logits, values and every
memory leaf, in float32 and float64, and the float64 gradient difference over all parameters.

    python experiments/parity_report.py                       # print the table only
    python experiments/parity_report.py --out my_parity.json  # also save it (refuses the tracked results
                                                              # file unless --overwrite-tracked)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACKED = "experiments/results/parity.json"
sys.path.insert(0, str(ROOT))

from jax_tx import config  # noqa: E402
from jax_tx.ppo.provenance import provenance  # noqa: E402
from parity_tests import harness  # noqa: E402

SMALL = dict(d_model=16, num_layers=2, num_heads=2, d_ff=32, memory_len=4, d_head=8)


def small_config(variant: str) -> config.PolicyConfig:
    extra = dict(base_dim=4, slot_dim=3, lstm_hidden=16) if variant == "slot" else {}
    if variant in ("lstm", "gru", "agalite_hybrid"):
        extra["lstm_hidden"] = 16
    if variant == "sliding":
        extra["max_cache_size"] = 12
    obs_dim = 4 + 3 * 3 if variant == "slot" else 6
    return config.preset(variant, obs_dim=obs_dim, num_actions=3, **SMALL, **extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="save the numbers as JSON here (default: print only)")
    parser.add_argument("--overwrite-tracked", action="store_true", help=f"allow --out {TRACKED}")
    args = parser.parse_args(argv)
    if args.out and Path(args.out).resolve() == (ROOT / TRACKED).resolve() and not args.overwrite_tracked:
        parser.error(f"{TRACKED} is the tracked result file; pass --overwrite-tracked to replace it")
    results = {}
    for variant in config.VARIANTS:
        cfg = small_config(variant)
        row = {}
        for dtype, tol in (("float32", harness.FP32_TOL), ("float64", harness.FP64_TOL)):
            report = harness.check_forward_parity(cfg.replace(dtype=dtype), tol)
            row[dtype] = {"max": max(report.values()), "per_leaf": report}
        row["grad_float64_max"] = harness.check_gradient_parity(cfg.replace(dtype="float64"))
        results[variant] = row
        print(
            f"{variant:<18} fp32 max-abs {row['float32']['max']:.2e}   fp64 max-abs {row['float64']['max']:.2e}"
            f"   fp64 grad max-abs {row['grad_float64_max']:.2e}"
        )
    payload = {"machine": f"{platform.machine()} CPU, {platform.python_version()}", "provenance": provenance(),
               "results": results}  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(payload, indent=2))
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
