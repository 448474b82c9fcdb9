"""The CPU speed levers of issue 17, each measured on / off in one process (interleaved), on the JAX train step.

Train step: forward over B segments x T steps + the loss of jax-tx bench (jax_tx/cli/bench_cases.py segment_loss,
on its random minibatch) + backward + Adam, jitted, timed with jax-tx bench's helpers (calls_per_measurement,
interleaved_rounds: all runs in one list, reversed every other round). Levers (all on is the default code):
  vjp      nn/common.py `matmul`: the dense layers' custom VJP (weight gradient = materialised x^T times g)
  gate     nn/gating.py GRUGate: six matrices as two fused matmuls (+ U_g)       (gtrxl, agalite)
  qrows    nn/relative.py: the query projection only for the T query rows        (trxl, gtrxl)
  scan     models/agalite.py: lax.scan instead of associative_scan for T <= SEQUENTIAL_MAX_STEPS (agalite)
"off" restores the previous code path (kept below as plain functions / modules) by patching module globals
before the step is traced. For each variant: all on, all off, and each lever off alone; reported
gain(lever) = median time with that lever off / median time all on (> 1: the lever helps).
--crossover times one AGaLiTe recurrent_attention layer (forward + backward) at several T, scan vs associative.
The XLA flag lever (--xla_cpu_experimental_ynn_fusion_type=dot) needs a process per setting:
run this script twice, with and without XLA_FLAGS, and compare the "all on" rows (--tag names the run).

    python experiments/bench_levers.py [--variants gtrxl trxl agalite sliding] [--rounds 5] [--tag noflag]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jax_tx.models.agalite as agalite  # noqa: E402
import jax_tx.models.gtrxl as gtrxl  # noqa: E402
import jax_tx.models.trxl as trxl  # noqa: E402
import jax_tx.nn.common as common  # noqa: E402
import jax_tx.nn.gating as gating  # noqa: E402
import jax_tx.nn.relative as relative  # noqa: E402
from jax_tx.cli.bench import add_size_args, calls_per_measurement, interleaved_rounds, policy_config  # noqa: E402
from jax_tx.cli.bench_cases import minibatches, segment_loss, timed  # noqa: E402
from jax_tx.config import preset  # noqa: E402
from jax_tx.models.policy import initial_memory, make_policy  # noqa: E402
from jax_tx.nn.attention import masked_softmax  # noqa: E402

LEVERS = {
    "gtrxl": ("vjp", "gate", "qrows"),
    "trxl": ("vjp", "qrows"),
    "agalite": ("vjp", "gate", "scan"),
    "sliding": ("vjp",),
    "trxl_nvidia": ("vjp",),
}


class UnfusedGRUGate(nn.Module):
    """The previous GRUGate: six separate bias-free Dense layers."""

    cfg: object

    @nn.compact
    def __call__(self, x, y):
        d = self.cfg.d_model
        lin = {n: common.dense(self.cfg, d, n, use_bias=False) for n in ("w_r", "u_r", "w_z", "u_z", "w_g", "u_g")}
        bg = self.param("bg", nn.initializers.constant(self.cfg.gate_bias), (d,), common.param_dtype(self.cfg))
        r = nn.sigmoid(lin["w_r"](y) + lin["u_r"](x))
        z = nn.sigmoid(lin["w_z"](y) + lin["u_z"](x) - bg.astype(x.dtype))
        return (1.0 - z) * x + z * jnp.tanh(lin["w_g"](y) + lin["u_g"](r * x))


class AllRowsAttention(nn.Module):
    """The previous RelMultiHeadAttention: q, k, v for all K rows, the memory rows' queries dropped."""

    cfg: object

    @nn.compact
    def __call__(self, keys_in, allowed, deterministic):
        cfg = self.cfg
        n, h = cfg.num_heads, cfg.head_dim
        b, k_len, _ = keys_in.shape
        t = allowed.shape[1]
        qkv = common.dense(cfg, 3 * n * h, "qkv", use_bias=False)(keys_in)
        q, k, v = jnp.split(qkv.reshape(b, k_len, 3, n, h), 3, axis=2)
        q, k, v = q[:, -t:, 0], k[:, :, 0], v[:, :, 0]
        pdt = common.param_dtype(cfg)
        r_w_bias = self.param("r_w_bias", nn.initializers.normal(0.02), (n, h), pdt)
        r_r_bias = self.param("r_r_bias", nn.initializers.normal(0.02), (n, h), pdt)
        pos = relative.sinusoid_embedding(relative.relative_distances(k_len, cfg.clamp_len, pdt), cfg.d_model)
        r = common.dense(cfg, n * h, "r_net", use_bias=False)(pos).reshape(k_len, n, h)
        ac = jnp.einsum("btnh,bknh->bntk", q + r_w_bias, k)
        bd = relative.rel_shift(jnp.einsum("btnh,knh->bntk", q + r_r_bias, r))
        probs = masked_softmax((ac + bd) * (h**-0.5), allowed[:, None])
        out = jnp.einsum("bntk,bknh->btnh", probs, v).reshape(b, t, n * h)
        return common.dense(cfg, cfg.d_model, "o_net", use_bias=False)(out)


ORIGINAL = {
    "matmul": common.matmul,
    "gate": gating.GRUGate,
    "attn": relative.RelMultiHeadAttention,
    "seq_max": agalite.SEQUENTIAL_MAX_STEPS,
}


def set_levers(off: set[str]) -> None:
    """Patch the module globals the models look up at trace time."""
    mm = common._contract_last if "vjp" in off else ORIGINAL["matmul"]
    for mod in (common, gating, relative):
        mod.matmul = mm
    gate = UnfusedGRUGate if "gate" in off else ORIGINAL["gate"]
    gating.GRUGate = agalite.GRUGate = gate
    attn = AllRowsAttention if "qrows" in off else ORIGINAL["attn"]
    trxl.RelMultiHeadAttention = gtrxl.RelMultiHeadAttention = attn
    agalite.SEQUENTIAL_MAX_STEPS = 1 if "scan" in off else ORIGINAL["seq_max"]
    agalite.recurrent_attention.clear_cache()


def make_config(variant: str, args):
    """The benchmark-size config of `variant` (one definition: jax_tx.cli.bench.policy_config)."""
    return policy_config(variant, args, 16, 4)


def build_step(cfg, args, seed: int = 0):
    """A compiled train step (jax-tx bench's loss and data) and its grads; returns (fn(iters) -> s per call, grads)."""
    model, tx = make_policy(cfg), optax.adam(3e-4)
    obs, reset, actions, adv, ret = (x[0] for x in minibatches(cfg, 1, args.batch, args.steps, 0.05, seed))
    batch = jax.device_put((obs, reset, initial_memory(cfg, args.batch), actions, adv, ret))
    loss_fn = segment_loss(model)

    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, grads

    params = model.init(jax.random.PRNGKey(seed), *batch[:3])
    state = [params, tx.init(params)]
    compiled = jax.jit(step).lower(*state, batch).compile()
    grads = compiled(*state, batch)[3]
    return timed(lambda: compiled(*state, batch), finish=jax.block_until_ready), grads


def max_grad_diff(a, b) -> float:
    leaves = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in leaves)


def levers_main(args) -> dict:
    runs, grads = {}, {}
    for v in args.variants:
        names = ["all_on", "all_off"] + [f"no_{lever}" for lever in LEVERS[v]]
        for name in [n for n in names if not args.configs or n in args.configs]:
            off = set(LEVERS[v]) if name == "all_off" else {name[3:]} if name.startswith("no_") else set()
            set_levers(off)
            runs[v, name], grads[v, name] = build_step(make_config(v, args), args)
            print(f"built {v} {name}", flush=True)
    set_levers(set())
    case = SimpleNamespace(timers=runs)  # one case: the whole list reversed every other round
    iters = calls_per_measurement({"levers": case}, args.target_s, 10)

    def report(r: int) -> None:
        print(f"round {r + 1}/{args.rounds} load {os.getloadavg()[0]:.1f}", flush=True)

    times = interleaved_rounds({"levers": case}, iters, args.rounds, report)["levers"]
    out = {}
    for v in args.variants:
        on = statistics.median(times[v, "all_on"])
        rows = {
            name: {
                "ms": 1e3 * statistics.median(ts),
                "gain": statistics.median(ts) / on,
                "max_abs_grad_diff_vs_all_on": max_grad_diff(grads[v, name], grads[v, "all_on"]),
            }
            for (vv, name), ts in times.items()
            if vv == v
        }
        out[v] = rows
        for name, row in rows.items():
            print(
                f"{v:<10}{name:<10}{row['ms']:9.2f} ms  gain {row['gain']:.3f}  grad diff "
                f"{row['max_abs_grad_diff_vs_all_on']:.2e}"
            )
    return out


def crossover_main(args) -> dict:
    cfg = preset("agalite", 16, 4, d_model=args.d_model, num_heads=args.heads, d_head=0)
    nh, dh, eta, b = cfg.num_heads, cfg.head_dim, cfg.eta, args.batch
    runs = {}
    for t in args.lengths:
        rng = np.random.default_rng(t)
        kqvbg = jnp.asarray(rng.normal(size=(b, t, nh, 5, dh)), jnp.float32)
        p = jnp.asarray(rng.normal(size=(b, t, nh, 3, eta)), jnp.float32)
        reset = jnp.asarray(rng.random((b, t)) < 0.05)
        state = agalite.initial_memory(cfg, b)["layers"][0]
        for method, seq_max in (("scan", 10**9), ("associative", 1)):
            agalite.SEQUENTIAL_MAX_STEPS = seq_max
            agalite.recurrent_attention.clear_cache()

            def loss(k, q, reset=reset, state=state):
                return jnp.sum(agalite.recurrent_attention(cfg, k, q, reset, state)[0] ** 2)

            f = jax.jit(jax.grad(loss, argnums=(0, 1)))
            jax.block_until_ready(f(kqvbg, p))
            runs[t, method] = timed(lambda f=f, kqvbg=kqvbg, p=p: f(kqvbg, p), finish=jax.block_until_ready)
    agalite.SEQUENTIAL_MAX_STEPS = ORIGINAL["seq_max"]
    times = {k: [] for k in runs}
    for r in range(args.rounds):
        for k, fn in runs.items():
            times[k].append(fn(max(1, min(10, round(args.target_s / fn(1))))))
        print(f"round {r + 1}/{args.rounds} load {os.getloadavg()[0]:.1f}", flush=True)
    out = {}
    for t in args.lengths:
        s, a = statistics.median(times[t, "scan"]), statistics.median(times[t, "associative"])
        out[t] = {"scan_ms": 1e3 * s, "associative_ms": 1e3 * a, "associative_over_scan": a / s}
        print(f"T={t:<5} scan {1e3 * s:8.2f} ms  associative {1e3 * a:8.2f} ms  assoc/scan {a / s:.2f}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["gtrxl", "trxl", "agalite", "sliding"], choices=list(LEVERS))
    ap.add_argument("--crossover", action="store_true", help="time AGaLiTe's scan vs associative over --lengths")
    ap.add_argument("--lengths", nargs="+", type=int, default=[16, 32, 64, 128, 256])
    add_size_args(ap)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target-s", type=float, default=0.25)
    ap.add_argument("--configs", nargs="+", default=None, help="only these of all_on, all_off, no_<lever>")
    ap.add_argument("--tag", default="", help="name of this run in the output file (e.g. the XLA_FLAGS setting)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "levers.json"))
    args = ap.parse_args()
    load0 = os.getloadavg()
    result = crossover_main(args) if args.crossover else levers_main(args)
    record = {
        "settings": vars(args),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax": jax.__version__,
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "result": result,
    }
    out = Path(args.out)
    prev = json.loads(out.read_text()) if out.exists() else {}
    prev[("crossover" if args.crossover else "levers") + (f"_{args.tag}" if args.tag else "")] = record
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(prev, indent=2, default=str) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
