"""Supervised memory probe (issue 15): can a core carry a +-1 cue from step 0 to step L with full BPTT, no RL?

    python experiments/memory_probe.py --variant agalite gru --length 16 64 --final-obs zero flag --seeds 0 1

Each sequence mirrors gymnax MemoryChain-bsuite (memory_length L, one bit): obs_t = [1 - t/L, 0, c if t = 0],
t = 0..L, so obs_L = [0, 0, 0] is all zeros (`--final-obs zero`, stricter than MemoryChain: gymnax's decision
step shows the time feature 1/L, `--final-obs gymnax` sets obs_L = [1/L, 0, 0]); `--final-obs flag` sets
obs_L[1] = 1 instead (a clearly non-zero decision-step observation, nothing else changed).
The policy (the suite's sizes,
`learning_suite.SMALL` + `VARIANT_POLICY`) is trained with Adam on the cross-entropy of its step-L logits against
c: loss = -log softmax(logits_L)[c], fresh sequences of 64 every step, memory reset at t = 0.

Per run it records the accuracy of the last batch, the first evaluation step (every 100) with batch accuracy
>= 0.95, and `grad_cue` = max |d(logits_L[0] - logits_L[1]) / d obs_0[2]| at initialisation (0 exactly means the
decision step cannot read the cue at all, so no gradient can teach it to). Rows go to results/suite/probe.csv.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import learning_suite as suite  # noqa: E402

OUT = HERE / "results" / "suite" / "probe.csv"
BATCH = 64
KEY_FIELDS = ("variant", "length", "final_obs", "overrides", "seed", "steps")
"""A rerun of the same probe replaces its row in probe.csv."""


def probe_config(variant: str, length: int, overrides: dict):
    """The suite's policy for `variant` on a 3-feature observation with 2 actions, XL memory L + 8."""
    from jax_tx.config import PolicyConfig

    fields = {**suite.SMALL, **suite.VARIANT_POLICY[variant], "memory_len": length + 8, **overrides}
    return PolicyConfig(variant=variant, obs_dim=3, num_actions=2, **fields)


FINAL_OBS = ("zero", "flag", "gymnax")


def sequences(key, length: int, final_obs: str):
    """(obs [B, L+1, 3], reset [B, L+1], cue class c [B]) as in the module docstring."""
    import jax
    import jax.numpy as jnp

    c = jax.random.bernoulli(key, 0.5, (BATCH,)).astype(jnp.int32)
    t = jnp.arange(length + 1)
    obs = jnp.zeros((BATCH, length + 1, 3)).at[:, :, 0].set(1.0 - t / length)
    obs = obs.at[:, 0, 2].set(2.0 * c - 1.0).at[:, length, 1].set(1.0 if final_obs == "flag" else 0.0)
    if final_obs == "gymnax":
        obs = obs.at[:, length, 0].set(1.0 / length)
    reset = jnp.zeros((BATCH, length + 1), bool).at[:, 0].set(True)
    return obs, reset, c


def run_probe(variant: str, length: int, final_obs: str, seed: int, steps: int, lr: float, overrides: dict) -> dict:
    import jax
    import optax

    from jax_tx.models.policy import initial_memory, make_policy

    cfg = probe_config(variant, length, overrides)
    model = make_policy(cfg)
    key = jax.random.PRNGKey(seed)
    obs, reset, _ = sequences(key, length, final_obs)
    params = model.init(key, obs, reset, initial_memory(cfg, BATCH))

    def logits_last(p, obs, reset):
        out, _ = model.apply(p, obs, reset, initial_memory(cfg, BATCH))
        return out.logits[:, -1]

    def margin(o):
        lg = logits_last(params, o, reset)
        return (lg[:, 0] - lg[:, 1]).sum()

    grad_cue = float(abs(jax.grad(margin)(obs)[:, 0, 2]).max())

    def loss_fn(p, obs, reset, c):
        lg = logits_last(p, obs, reset)
        return optax.softmax_cross_entropy_with_integer_labels(lg, c).mean(), (lg.argmax(-1) == c).mean()

    opt = optax.adam(lr)

    @jax.jit
    def update(p, opt_state, key):
        obs, reset, c = sequences(key, length, final_obs)
        (_, acc), g = jax.value_and_grad(loss_fn, has_aux=True)(p, obs, reset, c)
        upd, opt_state = opt.update(g, opt_state, p)
        return optax.apply_updates(p, upd), opt_state, acc

    opt_state, first, acc, t0 = opt.init(params), None, 0.0, time.perf_counter()
    for i in range(steps):
        key, sub = jax.random.split(key)
        params, opt_state, acc = update(params, opt_state, sub)
        if first is None and (i % 100 == 0 or i == steps - 1) and float(acc) >= 0.95:
            first = i
    return {
        "variant": variant,
        "length": length,
        "final_obs": final_obs,
        "overrides": json.dumps(overrides, sort_keys=True),
        "seed": seed,
        "steps": steps,
        "final_acc": f"{float(acc):.3f}",
        "first_acc_0.95": "-" if first is None else first,
        "grad_cue": f"{grad_cue:.3g}",
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": suite.machine_line(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", nargs="+", default=["agalite", "agalite_fast", "gru", "lstm", "trxl"])
    ap.add_argument("--length", nargs="+", type=int, default=[16, 64])
    ap.add_argument("--final-obs", nargs="+", choices=FINAL_OBS, default=["zero", "flag"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="policy field overrides")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    overrides = {k.removeprefix("policy."): v for k, v in suite.parse_set(args.set).items()}
    for variant in args.variant:
        for length in args.length:
            for final in args.final_obs:
                for seed in args.seeds:
                    row = run_probe(variant, length, final, seed, args.steps, args.lr, overrides)
                    print(json.dumps(row), flush=True)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    suite.write_row(args.out, row, KEY_FIELDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
