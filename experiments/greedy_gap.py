"""Why can a seed train at ~0.99 success yet score ~0.5 greedy? Retrain a suite row and play the final policy
both ways.

    python experiments/greedy_gap.py --task tmaze50 --variant agalite --seeds 0 1 2 --set policy.gate_bias=0

The run is the learning_suite row with the same task, variant, seeds and --set overrides (one vmapped program, so
the same numbers as that row on the same machine). Per seed it plays --episodes (1000) fresh episodes with the
argmax action (greedy, as the suite's greedy_success) and with sampled actions (the training policy), and appends
to results/suite/greedy_gap.csv: success (unfinished episodes count 0), the finished fraction and the mean and
spread of the finished episodes' lengths; for the sampled episodes also the success of the short ones (finished
within the greedy episodes' median length + 2 steps) and their count. A seed whose sampled success matches its
training success while its greedy success does not has learned a policy that works only on the trajectories it
samples; if its short sampled episodes fail like the greedy ones, the read-out fails off the long trips it trains on.
by_first_obs splits each mode's finished episodes by their first observation (T-Maze and MemoryChain show the cue
there): count, mean length and success per cue. A cue-dependent length with success that follows the length, not
the cue, is a timing code: the policy stores the cue in how fast it walks, which only its sampled no-ops carry.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import learning_suite as suite  # noqa: E402

OUT = suite.RESULTS / "greedy_gap.csv"
FIELDS = ["task", "variant", "overrides", "seed", "training_success", "mode", "success", "finished", "length_mean",
          "length_std", "short_success", "short_episodes", "by_first_obs", "machine"]  # fmt: skip


def play_both(trainer, state, seeds: list[int], episodes: int) -> dict[str, dict]:
    """{"greedy" | "sampled": {"success", "finished", "length_mean", "length_std", "short_success", "short_episodes":
    per-seed lists}}; short: finished episodes no longer than the greedy median length + 2 (greedy: all finished)."""
    import jax
    import numpy as np

    from jax_tx.ppo.evaluate import episodes_fn

    keys = jax.vmap(jax.random.PRNGKey)(jax.numpy.asarray([10_000 + s for s in seeds]))
    first = [first_observations(trainer, keys[i], episodes) for i in range(len(seeds))]  # the same in both modes
    out = {}
    for mode in ("greedy", "sampled"):
        play = jax.jit(jax.vmap(episodes_fn(trainer.model, trainer.cfg, trainer.env, episodes, mode == "greedy")))
        r = {k: np.asarray(v) for k, v in play(state.params, keys).items()}
        lengths = [r["length"][i][r["finished"][i]] for i in range(len(seeds))]
        out[mode] = {
            "success": np.where(r["finished"], r["success"], 0.0).mean(axis=1).tolist(),
            "finished": r["finished"].mean(axis=1).tolist(),
            "length_mean": [float(x.mean()) if x.size else float("nan") for x in lengths],
            "length_std": [float(x.std()) if x.size else float("nan") for x in lengths],
        }
        if mode == "greedy":
            limit = [np.inf] * len(seeds)
        else:
            limit = [np.median(x) + 2 if x.size else -1 for x in out["greedy"]["lengths"]]
        short = [r["finished"][i] & (r["length"][i] <= limit[i]) for i in range(len(seeds))]
        out[mode]["short_success"] = [float(r["success"][i][m].mean()) if m.any() else float("nan") for i, m in
                                      enumerate(short)]  # fmt: skip
        out[mode]["short_episodes"] = [int(m.sum()) for m in short]
        out[mode]["lengths"] = lengths
        out[mode]["by_first_obs"] = [by_first_obs(first[i], r, i) for i in range(len(seeds))]
    return out


def first_observations(trainer, key, episodes: int):
    """The first observation of each of episodes_fn's `episodes` envs for this key (its k_env half)."""
    import jax
    import numpy as np

    from jax_tx.ppo.rollout import initial_carry

    k_env, _ = jax.random.split(key)
    return np.asarray(initial_carry(trainer.env, trainer.cfg, k_env, episodes).obs)


def by_first_obs(first, r: dict, i: int) -> str:
    """Seed i's finished episodes per distinct first observation (sorted), as
    'obs [1, 0, 1, 0]: n 964, length 51.0, success 1.000 | ...'."""
    import numpy as np

    groups = []
    for obs in sorted({tuple(np.round(o, 3).tolist()) for o in first}):
        m = r["finished"][i] & np.all(np.isclose(first, obs, atol=1e-3), axis=1)
        if m.any():
            text = ", ".join(f"{x:g}" for x in obs)
            groups.append(f"obs [{text}]: n {int(m.sum())}, length {r['length'][i][m].mean():.1f}, "
                          f"success {r['success'][i][m].mean():.3f}")  # fmt: skip
    return " | ".join(groups)


def main(argv=None) -> int:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=sorted(suite.TASKS))
    ap.add_argument("--variant", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides, as learning_suite.py --set")
    ap.add_argument("--episodes", type=int, default=1000, help="fresh episodes per seed and mode")
    args = ap.parse_args(argv)
    overrides = suite.parse_set(args.set)
    rec = suite.apply_overrides(suite.recipe(args.task, args.variant), overrides)
    tcfg = suite.train_config(rec)
    out = suite.train_seeds(tcfg, args.seeds)
    training = [float(np.nanmean(s[-10:])) for s in out["success"]]
    played = play_both(out["trainer"], out["state"], args.seeds, args.episodes)
    new = not OUT.exists()
    with open(OUT, "a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new:
            w.writeheader()
        for i, seed in enumerate(args.seeds):
            for mode, r in played.items():
                row = {"task": args.task, "variant": args.variant, "overrides": json.dumps(overrides, sort_keys=True),
                       "seed": seed, "training_success": f"{training[i]:.3f}", "mode": mode,
                       "success": f"{r['success'][i]:.3f}", "finished": f"{r['finished'][i]:.3f}",
                       "length_mean": f"{r['length_mean'][i]:.1f}", "length_std": f"{r['length_std'][i]:.1f}",
                       "short_success": f"{r['short_success'][i]:.3f}", "short_episodes": r["short_episodes"][i],
                       "by_first_obs": r["by_first_obs"][i],
                       "machine": suite.machine_line()}  # fmt: skip
                w.writerow(row)
                print(" ".join(f"{k}={v}" for k, v in row.items() if k not in ("overrides", "machine")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
