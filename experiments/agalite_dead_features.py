"""Dead AGaLiTe feature maps at initialisation (issue 15): which heads can never read or write, per seed.

    python experiments/agalite_dead_features.py --task tmaze50 --variant agalite_fast --seeds 0 1 2 3 4

With the relu kernel, psi(k) = vec(relu(k) x relu(p1)) and phi(q) = vec(relu(q) x relu(p2)) are exactly 0 where
every coordinate of p1 (or p2) is negative; with eta = 2 and a near-constant input (one corridor observation)
that happens for a whole head with probability ~1/4 at init. A head whose phi(q) is 0 reads 0 and passes no
gradient (relu'(0) = 0); one whose psi(k) is 0 writes nothing. For each seed this builds the suite's recipe
(`learning_suite.recipe` + `--set`), initialises it as the PPO learner does (`Trainer.init`), collects one rollout
with the initial policy, replays it in sequence mode and records, per layer and head, the fraction of steps where
phi(q) (dead_query) and psi(k) (dead_key) are all zero, and where the read-out score <s_t, phi(q_t)> is zero
(zero_score; s_t = the layer's norm state, the discounted sum of gamma psi(k) since the episode start). A zero score
with non-zero features is a head whose key and query supports are disjoint (e.g. relu(p1) and relu(p2) positive
on different eta coordinates: probability (3/4)^eta at a near-constant input): it reads exactly 0 and, as for a
zero feature map, passes no gradient to q, k, p1, p2 or v at that step. Standard layers score per head; the fast
layer sums the score over heads, so there a head with a zero score of its own still reads through the others.
dead_heads counts heads dead (>= 0.99) in any of the three.
Rows go to results/suite/dead_features.csv (a rerun replaces its row).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import learning_suite as suite  # noqa: E402

OUT = HERE / "results" / "suite" / "dead_features.csv"
KEY_FIELDS = ("task", "variant", "overrides", "seed", "layer")
DEAD = 0.99
"""A head is dead when its feature map is all zero on at least this fraction of the rollout's steps."""


def zero_fraction(features: np.ndarray) -> np.ndarray:
    """features [B, T, H, E] -> [H]: the fraction of (b, t) where features[b, t, h] is all zero."""
    return np.mean(np.all(features == 0, axis=-1), axis=(0, 1))


def zero_score_fraction(psi, phi, gamma, reset) -> np.ndarray:
    """psi, phi, gamma [B, T, H, E] of a replay from fresh memory, reset [B, T] -> [H]: the fraction of (b, t) where
    <s_t, phi_t> = 0, s_t = (1 - gamma_t)(1 - reset_t) s_{t-1} + gamma_t psi_t, s_{-1} = 0 (models/agalite.py)."""
    import jax.numpy as jnp

    from jax_tx.models import agalite

    keep = (~reset).astype(psi.dtype)[:, :, None, None]
    k_in = gamma * psi
    norm = agalite.discounted_sum((1.0 - gamma) * keep, k_in, jnp.zeros_like(k_in[:, 0]))
    return np.mean(np.asarray(jnp.einsum("bthe,bthe->bth", norm, phi)) == 0, axis=(0, 1))


def dead_rows(task: str, variant: str, seed: int, overrides: dict) -> list[dict]:
    """One row per AGaLiTe layer: per-head zero fractions of phi(q) and psi(k) over one rollout at init."""
    import jax

    from jax_tx.models import agalite
    from jax_tx.models.policy import initial_memory
    from jax_tx.ppo.rollout import policy_inputs
    from jax_tx.ppo.trainer import Trainer

    tcfg = suite.train_config(suite.apply_overrides(suite.recipe(task, variant), overrides))
    cfg = tcfg.policy
    if not cfg.variant.startswith("agalite"):
        raise SystemExit(f"--variant {variant}: not an AGaLiTe variant")
    trainer = Trainer(tcfg)
    state = trainer.init(seed)
    _, ro, _, _ = trainer.collect(state.params, state.carry, state.key)
    trs = jax.tree_util.tree_map(lambda x: jax.numpy.swapaxes(x, 0, 1), ro.transitions)  # [B, T, ...]
    kw = policy_inputs(cfg, trs.obs, trs.reset, trs.prev_action, trs.prev_reward)
    memory = initial_memory(cfg, trs.reset.shape[0])
    _, found = trainer.model.apply(state.params, memory=memory, deterministic=True, mutable=["intermediates"], **kw)
    rows = []
    for i, (kqvbg, p) in enumerate(attention_intermediates(found["intermediates"]).values()):  # in call order
        psi, phi, _, _, gamma = agalite.feature_maps(cfg, kqvbg, p)
        dq, dk = zero_fraction(np.asarray(phi)), zero_fraction(np.asarray(psi))
        zs = zero_score_fraction(psi, phi, gamma, trs.reset)
        rows.append(
            {
                "task": task,
                "variant": variant,
                "overrides": json.dumps(suite.row_overrides(task, variant, overrides), sort_keys=True),
                "seed": seed,
                "layer": i,
                "dead_query": " ".join(f"{x:.3f}" for x in dq),
                "dead_key": " ".join(f"{x:.3f}" for x in dk),
                "zero_score": " ".join(f"{x:.3f}" for x in zs),
                "dead_heads": int(np.sum((dq >= DEAD) | (dk >= DEAD) | (zs >= DEAD))),
                "num_heads": cfg.num_heads,
                "machine": suite.machine_line(),
            }
        )
    return rows


def attention_intermediates(tree, path: str = "") -> dict:
    """{module path: (kqvbg, p)} for every AGaLiTeAttention that sowed its projections ("feature_inputs")."""
    out = {}
    for name, sub in tree.items():
        if name == "feature_inputs":
            out[path] = sub[0]  # sow keeps a tuple of every value sown under the name: one call, one value
        elif isinstance(sub, dict):
            out.update(attention_intermediates(sub, f"{path}/{name}"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, choices=sorted(suite.TASKS))
    ap.add_argument("--variant", required=True, choices=[v for v in suite.VARIANT_POLICY if v.startswith("agalite")])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides, as learning_suite")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    overrides = suite.parse_set(args.set)
    for seed in args.seeds:
        for row in dead_rows(args.task, args.variant, seed, overrides):
            print(json.dumps(row), flush=True)
            suite.write_row(args.out, row, KEY_FIELDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
