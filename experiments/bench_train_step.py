"""One PPO-like training step and one rollout step, JAX (jit) vs the PyTorch twin, for every variant except slot.

For each variant in `jax_tx.config.VARIANTS` except "slot" (several action heads), one config is built and used by
both twins with identical weights (torch init, converted with `jax_tx.io.convert.torch_to_flax`):

  train step   forward in sequence mode on B segments of T steps (random obs, resets at t = 0 and with probability
               p_reset elsewhere, memory from `initial_memory`) + a scalar loss
                   L = -mean(log_softmax(logits)[a] * adv) + 0.5 * mean((value - ret)^2)
               (a, adv, ret random, the same arrays in both twins) + backward + one Adam update.
               JAX: one `jax.jit` function (jax.value_and_grad + optax.adam, params and optimizer state donated),
               timed after an explicit lower + compile (its wall time is reported as the compile time).
               torch: eager, eval mode (dropout 0), zero_grad + forward + backward + torch.optim.Adam.step.
  inference    one rollout step (T = 1) for N envs, memory carried from call to call: jitted apply vs torch no_grad.

Every variant shares d_model, num_layers, num_heads, d_ff (d_head = d_model // num_heads) and dropout 0; the XL
family uses memory_len, sliding a cache of 4 * memory_len tokens (4 tokens per step: the same span in steps); the
other variant-specific fields (AGaLiTe eta / oscillators, actor/critic head widths) keep their presets. Thread
counts are left at their defaults (XLA's CPU pool, torch.get_num_threads(); --torch-threads changes torch's).

Timing: R rounds; in each round every variant runs, in turn, JAX train / torch train / JAX inference / torch
inference (the order of the twins alternates between rounds), so load from other processes spreads over both
twins. Each measurement is the mean of k calls, k from the warm-up (about --target-s of work, 1..--max-iters).
Reported: the median over rounds, and speedup = torch ms / JAX ms (> 1: JAX faster).
Before timing, the loss of the first step is computed in both twins from the same weights and inputs (a check that
the two sides compute the same thing; recorded as loss0_abs_diff).

    python experiments/bench_train_step.py [--batch 64] [--steps 16] [--infer-batch 1024] [--rounds 7]
        [--d-model 64] [--layers 2] [--heads 4] [--d-ff 128] [--memory-len 16] [--variants gtrxl lstm ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402

import jax_tx  # noqa: E402
import torch_ref  # noqa: E402
from jax_tx.cli.bench import policy_config  # noqa: E402
from jax_tx.config import VARIANTS, PolicyConfig  # noqa: E402
from jax_tx.io import convert  # noqa: E402
from torch_ref.models.policy import tree_leaves  # noqa: E402

DEFAULT_VARIANTS = tuple(v for v in VARIANTS if v != "slot")
MACHINE = "2-core x86_64 CPU, shared"


def make_config(variant: str, args):
    """The benchmark-size config of `variant` (one definition: jax_tx.cli.bench.policy_config)."""
    return policy_config(variant, args, args.obs_dim, args.num_actions)


def random_resets(rng: np.random.Generator, batch: int, steps: int, p: float, first: bool) -> np.ndarray:
    reset = rng.random((batch, steps)) < p
    if first:
        reset[:, 0] = True
    return reset


def tree_bytes(tree) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))


class Bench:
    """One variant in both twins: a train step on [B, T] segments and a rollout step on [N, 1]."""

    def __init__(self, cfg: PolicyConfig, args, seed: int = 0):
        self.cfg = cfg
        torch.manual_seed(seed)
        self.tmodel = torch_ref.make_policy(cfg)
        self.tmodel.train(False)
        variables = convert.torch_to_flax(self.tmodel.state_dict(), cfg)
        self.num_params = sum(p.numel() for p in self.tmodel.parameters())
        model = jax_tx.make_policy(cfg)
        rng = np.random.default_rng(seed)
        B, T, N = args.batch, args.steps, args.infer_batch
        obs = rng.normal(size=(B, T, cfg.obs_dim)).astype(np.float32)
        reset = random_resets(rng, B, T, args.p_reset, first=True)
        actions = rng.integers(0, cfg.num_actions, size=(B, T)).astype(np.int32)
        adv = rng.normal(size=(B, T)).astype(np.float32)
        ret = rng.normal(size=(B, T)).astype(np.float32)

        # ---- JAX train step
        tx = optax.adam(args.lr)

        def loss_fn(params, obs, reset, mem, actions, adv, ret):
            out, _ = model.apply(params, obs, reset, mem)
            logp = jax.nn.log_softmax(out.logits, axis=-1)
            logp_a = jnp.take_along_axis(logp, actions[..., None], axis=-1)[..., 0]
            return -jnp.mean(logp_a * adv) + 0.5 * jnp.mean((out.value - ret) ** 2)

        def train_step(params, opt_state, batch):
            loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self.params = jax.device_put(jax.tree_util.tree_map(jnp.asarray, variables))
        self.opt_state = tx.init(self.params)
        self.batch = jax.device_put(
            (obs, reset, jax_tx.initial_memory(cfg, B), actions, adv, ret),
        )
        start = time.perf_counter()
        self.jax_train = (
            jax.jit(train_step, donate_argnums=(0, 1)).lower(self.params, self.opt_state, self.batch).compile()
        )
        self.train_compile_s = time.perf_counter() - start
        self.jax_loss0 = float(jax.jit(loss_fn)(self.params, *self.batch))

        # ---- torch train step
        self.t_batch = (
            torch.as_tensor(obs),
            torch.as_tensor(reset),
            torch_ref.initial_memory(cfg, B),
            torch.as_tensor(actions, dtype=torch.int64),
            torch.as_tensor(adv),
            torch.as_tensor(ret),
        )
        self.opt = torch.optim.Adam(self.tmodel.parameters(), lr=args.lr)
        with torch.no_grad():
            self.torch_loss0 = float(self._torch_loss(*self.t_batch))

        # ---- inference (T = 1, N envs, memory carried)
        i_obs = rng.normal(size=(N, 1, cfg.obs_dim)).astype(np.float32)
        i_reset = random_resets(rng, N, 1, args.p_reset, first=False)
        self.i_obs, self.i_reset = jax.device_put((i_obs, i_reset))
        self.i_mem = jax_tx.initial_memory(cfg, N)
        self.memory_bytes_per_env = tree_bytes(jax_tx.initial_memory(cfg, 1))
        start = time.perf_counter()
        self.jax_infer = (
            jax.jit(lambda p, o, r, m: model.apply(p, o, r, m)).lower(self.params, self.i_obs, self.i_reset, self.i_mem)
        ).compile()
        self.infer_compile_s = time.perf_counter() - start
        self.ti_obs, self.ti_reset = torch.as_tensor(i_obs), torch.as_tensor(i_reset)
        self.ti_mem = torch_ref.initial_memory(cfg, N)

        # warm up every path (allocators, torch's first-call overheads), then pick calls per measurement:
        # enough for about target_s of work, between 1 and max_iters
        self.iters: dict[str, int] = {}
        for key in ("jax_train", "torch_train", "jax_infer", "torch_infer"):
            fn = getattr(self, f"time_{key}")
            fn(1)
            self.iters[key] = int(min(args.max_iters, max(1, round(args.target_s / fn(1)))))

    def _torch_loss(self, obs, reset, mem, actions, adv, ret):
        out, _ = self.tmodel(obs, reset, mem)
        logp = torch.log_softmax(out.logits, dim=-1)
        logp_a = logp.gather(-1, actions[..., None])[..., 0]
        return -(logp_a * adv).mean() + 0.5 * ((out.value - ret) ** 2).mean()

    def time_jax_train(self, iters: int | None = None) -> float:
        n = iters or self.iters["jax_train"]
        start = time.perf_counter()
        for _ in range(n):
            self.params, self.opt_state, loss = self.jax_train(self.params, self.opt_state, self.batch)
        jax.block_until_ready((self.params, loss))
        return (time.perf_counter() - start) / n

    def time_torch_train(self, iters: int | None = None) -> float:
        n = iters or self.iters["torch_train"]
        start = time.perf_counter()
        for _ in range(n):
            self.opt.zero_grad(set_to_none=True)
            loss = self._torch_loss(*self.t_batch)
            loss.backward()
            self.opt.step()
        return (time.perf_counter() - start) / n

    def time_jax_infer(self, iters: int | None = None) -> float:
        n = iters or self.iters["jax_infer"]
        start = time.perf_counter()
        for _ in range(n):
            out, self.i_mem = self.jax_infer(self.params, self.i_obs, self.i_reset, self.i_mem)
        jax.block_until_ready((out, self.i_mem))
        return (time.perf_counter() - start) / n

    def time_torch_infer(self, iters: int | None = None) -> float:
        n = iters or self.iters["torch_infer"]
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(n):
                _, self.ti_mem = self.tmodel(self.ti_obs, self.ti_reset, self.ti_mem)
        return (time.perf_counter() - start) / n


def subnormal_fraction(tree) -> float | None:
    """Fraction of float32 memory values that are subnormal (slow on x86 unless flushed); None without memory."""
    leaves = [t.detach().numpy().ravel() for t in tree_leaves(tree) if t.is_floating_point()]
    x = np.abs(np.concatenate(leaves)) if leaves else np.zeros(0)
    if x.size == 0:
        return None
    tiny = np.finfo(np.float32).tiny
    return float(np.mean((x > 0) & (x < tiny)))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=DEFAULT_VARIANTS)
    ap.add_argument("--batch", type=int, default=64, help="B: segments per train step")
    ap.add_argument("--steps", type=int, default=16, help="T: steps per segment (BPTT horizon)")
    ap.add_argument("--infer-batch", type=int, default=1024, help="N: envs per rollout step (T = 1)")
    ap.add_argument("--p-reset", type=float, default=0.05, help="reset probability per step (plus t = 0 in training)")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, default=128)
    ap.add_argument("--memory-len", type=int, default=16)
    ap.add_argument("--obs-dim", type=int, default=16)
    ap.add_argument("--num-actions", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median reported)")
    ap.add_argument("--target-s", type=float, default=0.25, help="work per measurement: calls = target / warm-up time")
    ap.add_argument("--max-iters", type=int, default=10, help="at most this many calls per measurement (mean taken)")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_step_bench.json"))
    args = ap.parse_args(argv)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)

    t_start = time.perf_counter()
    load_start = os.getloadavg()
    cfgs = {v: make_config(v, args) for v in args.variants}
    benches = {}
    for name, cfg in cfgs.items():
        benches[name] = Bench(cfg, args)
        b = benches[name]
        print(
            f"built {name:<18} params {b.num_params:>8}  compile train {b.train_compile_s:5.1f}s "
            f"infer {b.infer_compile_s:4.1f}s  loss jax {b.jax_loss0:.6f} torch {b.torch_loss0:.6f}",
            flush=True,
        )
    keys = ("jax_train", "torch_train", "jax_infer", "torch_infer")
    times: dict[str, dict[str, list[float]]] = {n: {k: [] for k in keys} for n in benches}
    loads = []
    for r in range(args.rounds):
        for name, b in benches.items():
            train = [("jax_train", b.time_jax_train), ("torch_train", b.time_torch_train)]
            infer = [("jax_infer", b.time_jax_infer), ("torch_infer", b.time_torch_infer)]
            if r % 2:
                train, infer = train[::-1], infer[::-1]
            for key, fn in train + infer:
                times[name][key].append(fn())
        loads.append(os.getloadavg()[0])
        print(
            f"round {r + 1}/{args.rounds} done, load {loads[-1]:.1f} ({time.perf_counter() - t_start:.0f}s)", flush=True
        )

    rows = {}
    for name, b in benches.items():
        med = {k: 1e3 * statistics.median(times[name][k]) for k in keys}
        cfg = b.cfg
        rows[name] = {
            "config": cfg.to_dict(),
            "num_params": b.num_params,
            "memory_bytes_per_env": b.memory_bytes_per_env,
            "jax_train_compile_s": b.train_compile_s,
            "jax_infer_compile_s": b.infer_compile_s,
            "loss0_jax": b.jax_loss0,
            "loss0_torch": b.torch_loss0,
            "loss0_abs_diff": abs(b.jax_loss0 - b.torch_loss0),
            **{f"{k}_ms": v for k, v in med.items()},
            "train_speedup_torch_over_jax": med["torch_train"] / med["jax_train"],
            "infer_speedup_torch_over_jax": med["torch_infer"] / med["jax_infer"],
            "calls_per_measurement": b.iters,
            "torch_infer_memory_subnormal_fraction": subnormal_fraction(b.ti_mem),
            "all_rounds_ms": {k: [1e3 * t for t in times[name][k]] for k in keys},
        }

    print(
        f"\n{MACHINE} ({cpu_model()}); jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )
    print(
        f"train: B={args.batch} x T={args.steps}; inference: N={args.infer_batch} x T=1; d_model {args.d_model}, "
        f"{args.layers} layers, {args.heads} heads, d_ff {args.d_ff}, memory {args.memory_len}; "
        f"median of {args.rounds} interleaved rounds "
        f"(each the mean of 1-{args.max_iters} calls, ~{args.target_s}s of work)"
    )
    head = f"{'variant':<18}{'params':>8}{'compile s':>10}{'train jax ms':>13}{'torch ms':>10}{'torch/jax':>10}"
    print(head + f"{'infer jax ms':>13}{'torch ms':>10}{'torch/jax':>10}")
    for name, r in rows.items():
        print(
            f"{name:<18}{r['num_params']:>8}{r['jax_train_compile_s']:>10.1f}"
            f"{r['jax_train_ms']:>13.2f}{r['torch_train_ms']:>10.2f}{r['train_speedup_torch_over_jax']:>10.2f}"
            f"{r['jax_infer_ms']:>13.2f}{r['torch_infer_ms']:>10.2f}{r['infer_speedup_torch_over_jax']:>10.2f}"
        )
    total_s = time.perf_counter() - t_start
    print(f"total {total_s:.0f}s")

    result = {
        "what": "one PPO-like train step (forward over [B,T] + loss + backward + Adam) and one rollout step "
        "(T=1, memory carried), JAX jit vs torch eager, same weights; see the script's docstring",
        "settings": vars(args) | {"variants": list(args.variants), "loss": "-mean(logp[a]*adv) + 0.5*mean((v-ret)^2)"},
        "machine": {
            "description": MACHINE,
            "cpu": cpu_model(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": getattr(jax.lib, "__version__", None) or jax.__version__,
            "optax": optax.__version__,
            "torch": torch.__version__,
            "jax_device": str(jax.devices()[0]),
            "torch_threads": torch.get_num_threads(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "loadavg_1min_after_each_round": loads,
            "note": "wall-clock medians on a shared machine (other jobs add noise); compare ratios, not absolutes",
        },
        "total_wall_s": total_s,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
