"""Slot transformer vs a flat-concatenation LSTM policy: parameters, time and memory per slot count.

For N slots the observation is [base | N slots] (width base_dim + N * slot_dim). Both policies
read the same observations: `slot` (preset sizes: width 64, 2 layers, 4 heads, LSTM 128) and
`lstm` (preset: Linear(obs -> 128) -> LSTM 128 -> Metta heads, on the flat concatenation).
For each (model, N) at batch B and sequence T:

  forward   jitted apply over [B, T]          min and median seconds of R interleaved runs (min printed)
  backward  jitted value_and_grad of a policy-style loss         (forward + backward)
  memory    XLA's compiled memory_analysis: argument + output + temp - alias bytes (JAX),
            and for torch the bytes autograd saves for backward (unique storages)
The torch twins are timed in the same run (eager, float32, CPU threads as given).

    python experiments/bench_slot.py [--slots 3 10 25 50] [--batch 32] [--steps 64] [--remat] [--out ...]

--remat adds `slot_remat` (the slot policy with slot_remat=True: each encoder layer rematerialised in
the backward pass, jax.checkpoint) to the same interleaved runs, and its criteria beside the plain slot's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import jax_tx  # noqa: E402
import torch_ref  # noqa: E402
from jax_tx.config import preset  # noqa: E402
from jax_tx.io import convert  # noqa: E402


def configs(n: int, args) -> dict:
    width = args.base_dim + n * args.slot_dim
    out = {
        "slot": preset("slot", width, args.num_actions, base_dim=args.base_dim, slot_dim=args.slot_dim),
        "lstm": preset("lstm", width, args.num_actions),
    }
    if getattr(args, "remat", False):
        out["slot_remat"] = out["slot"].replace(slot_remat=True)
    return out


def inputs(cfg, n: int, args, seed: int = 0):
    """Random obs with ~60% active slots (flags 0/1), resets at t=0 and ~2% of steps."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(args.batch, args.steps, args.base_dim))
    slots = rng.normal(size=(args.batch, args.steps, n, args.slot_dim))
    slots[..., 0] = rng.random((args.batch, args.steps, n)) < 0.6
    obs = np.concatenate([base, slots.reshape(args.batch, args.steps, -1)], axis=-1).astype(np.float32)
    reset = rng.random((args.batch, args.steps)) < 0.02
    reset[:, 0] = True
    return obs, reset


def heads(out) -> list:
    return list(out.logits) if isinstance(out.logits, tuple) else [out.logits]


def jax_loss(model, params, obs, reset, mem):
    """-mean log pi(a=0) over every head + mean value^2 (a stand-in for the PPO loss)."""
    out, _ = model.apply(params, obs, reset, mem)
    logp = sum(-jnp.mean(jax.nn.log_softmax(x, axis=-1)[..., 0]) for x in heads(out))
    return logp + jnp.mean(out.value**2)


def torch_loss(tmodel, obs, reset, mem):
    out, _ = tmodel(obs, reset, mem)
    logp = sum(-torch.mean(torch.log_softmax(x, dim=-1)[..., 0]) for x in heads(out))
    return logp + torch.mean(out.value**2)


def time_interleaved(jobs: dict, repeats: int) -> dict:
    """{name: fn} -> {name: {median_s, min_s}}; one warm-up (compile) each, then rounds that run
    every job once in turn, so that the models compared share the machine's load."""
    for fn in jobs.values():
        fn()
    times: dict = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, fn in jobs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(t), "min_s": min(t)} for name, t in times.items()}


def compiled_bytes(fn, *args) -> dict:
    m = jax.jit(fn).lower(*args).compile().memory_analysis()
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return {"total_bytes": int(total), "temp_bytes": int(m.temp_size_in_bytes)}


def torch_saved_bytes(tmodel, obs, reset, mem) -> int:
    """Bytes of the unique storages autograd keeps for backward (activation memory)."""
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch_loss(tmodel, obs, reset, mem)
    return sum(seen.values())


def jax_jobs(cfg, obs, reset, tmodel, args) -> tuple[dict, dict]:
    """(timing jobs, numbers): params and compiled memory of forward and forward+backward."""
    model = jax_tx.make_policy(cfg)
    params = convert.torch_to_flax(tmodel.state_dict(), cfg)
    mem = jax_tx.initial_memory(cfg, args.batch)
    obs, reset = jnp.asarray(obs), jnp.asarray(reset)
    forward = lambda p, o, r, m: model.apply(p, o, r, m)  # noqa: E731
    backward = jax.value_and_grad(lambda p, o, r, m: jax_loss(model, p, o, r, m))
    fwd, bwd, block = jax.jit(forward), jax.jit(backward), jax.block_until_ready
    jobs = {
        "forward": lambda: block(fwd(params, obs, reset, mem)),
        "backward": lambda: block(bwd(params, obs, reset, mem)),
    }
    numbers = {
        "params": sum(int(x.size) for x in jax.tree_util.tree_leaves(params)),
        "forward_memory": compiled_bytes(forward, params, obs, reset, mem),
        "backward_memory": compiled_bytes(backward, params, obs, reset, mem),
    }
    return jobs, numbers


def torch_jobs(cfg, tmodel, obs, reset, args) -> tuple[dict, dict]:
    obs, reset = torch.as_tensor(obs), torch.as_tensor(reset)
    mem = torch_ref.initial_memory(cfg, args.batch)

    def forward():
        with torch.no_grad():
            tmodel(obs, reset, mem)

    def backward():
        tmodel.zero_grad(set_to_none=True)
        torch_loss(tmodel, obs, reset, mem).backward()

    numbers = {
        "params": sum(p.numel() for p in tmodel.parameters()),
        "saved_activation_bytes": torch_saved_bytes(tmodel, obs, reset, mem),
    }
    return {"forward": forward, "backward": backward}, numbers


def bench_slot_count(n: int, args) -> dict:
    """{model: {lib: numbers + forward/backward times}} for N slots, timings interleaved."""
    rows, jobs = {}, {}
    for name, cfg in configs(n, args).items():
        torch.manual_seed(0)
        tmodel = torch_ref.make_policy(cfg)
        obs, reset = inputs(cfg, n, args)
        libs = {"jax": jax_jobs(cfg, obs, reset, tmodel, args)}
        if not args.no_torch and not cfg.slot_remat:  # the torch twin ignores slot_remat
            libs["torch"] = torch_jobs(cfg, tmodel, obs, reset, args)
        rows[name] = {lib: numbers for lib, (_, numbers) in libs.items()}
        jobs.update({(name, lib, kind): fn for lib, (fns, _) in libs.items() for kind, fn in fns.items()})
    timings = time_interleaved(jobs, args.repeats)
    for (name, lib, kind), t in timings.items():
        rows[name][lib][kind] = t
    return rows


def ratio(results: dict, n: int, lib: str, *path: str, model: str = "slot") -> float:
    """model / lstm of the number at `path` in results[n][model][lib]."""
    a, b = results[str(n)][model][lib], results[str(n)]["lstm"][lib]
    for key in path:
        a, b = a[key], b[key]
    return a / b


def criteria(results: dict, slots: list[int]) -> dict:
    """The plan's targets: <= 10% slower than the LSTM at 3 slots; < 50% of its memory at 50 slots.
    Times compare the fastest of the interleaved runs (the least disturbed on a shared machine)."""
    libs = list(results[str(slots[0])]["slot"])
    out: dict = {}
    if 3 in slots:
        for lib in libs:
            for kind in ("forward", "backward"):
                out[f"{lib}_{kind}_time_ratio_at_3"] = ratio(results, 3, lib, kind, "min_s")
        out["time_met"] = max(out["jax_forward_time_ratio_at_3"], out["jax_backward_time_ratio_at_3"]) <= 1.10
    if 50 in slots:
        out["jax_backward_memory_ratio_at_50"] = ratio(results, 50, "jax", "backward_memory", "total_bytes")
        out["jax_forward_memory_ratio_at_50"] = ratio(results, 50, "jax", "forward_memory", "total_bytes")
        if "torch" in libs:
            out["torch_saved_activation_ratio_at_50"] = ratio(results, 50, "torch", "saved_activation_bytes")
        out["param_ratio_at_50"] = ratio(results, 50, "jax", "params")
        out["memory_met"] = out["jax_backward_memory_ratio_at_50"] < 0.5
    if "slot_remat" in results[str(slots[0])]:
        rm = {"model": "slot_remat"}
        if 3 in slots:
            for kind in ("forward", "backward"):
                out[f"remat_jax_{kind}_time_ratio_at_3"] = ratio(results, 3, "jax", kind, "min_s", **rm)
        if 50 in slots:
            out["remat_jax_backward_memory_ratio_at_50"] = ratio(
                results, 50, "jax", "backward_memory", "total_bytes", **rm
            )
            out["remat_memory_met"] = out["remat_jax_backward_memory_ratio_at_50"] < 0.5
    return out


def summary_line(n: int, name: str, row: dict) -> str:
    j, ms, mib = row["jax"], 1e3, 2.0**-20
    line = (
        f"N={n:3d} {name:10s} params={j['params']:8d}  jax fwd {j['forward']['min_s'] * ms:8.1f} ms  "
        f"fwd+bwd {j['backward']['min_s'] * ms:8.1f} ms  mem {j['backward_memory']['total_bytes'] * mib:8.1f} MiB"
    )
    if "torch" in row:
        t = row["torch"]
        line += (
            f"  | torch fwd {t['forward']['min_s'] * ms:8.1f} ms  fwd+bwd {t['backward']['min_s'] * ms:8.1f} ms"
            f"  saved {t['saved_activation_bytes'] * mib:8.1f} MiB"
        )
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[3, 10, 25, 50])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--base-dim", type=int, default=16)
    parser.add_argument("--slot-dim", type=int, default=8)
    parser.add_argument("--num-actions", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true", help="skip the torch twins")
    parser.add_argument("--remat", action="store_true", help="also time slot_remat=True (jax.checkpoint per layer)")
    parser.add_argument("--out", default="experiments/results/slot_bench.json")
    args = parser.parse_args(argv)
    jax.config.update("jax_default_matmul_precision", "highest")
    results: dict = {}
    for n in args.slots:
        results[str(n)] = bench_slot_count(n, args)
        for name, row in results[str(n)].items():
            print(summary_line(n, name, row), flush=True)
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "jax_backend": jax.default_backend(),
        },
        "versions": {"jax": jax.__version__, "torch": torch.__version__},
        "torch_threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": results,
        "criteria": criteria(results, args.slots),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["criteria"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
