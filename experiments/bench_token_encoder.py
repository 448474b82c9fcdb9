"""Token encoder (shim + Fourier tokenizer + Perceiver) forward+backward: JAX jit vs torch eager, tokens/s.

At Metta's sizes (metta_interop.md section 3): the Cortex / ViT-sliding encoder (Perceiver width 64,
12 latents, 4 heads, 2 layers) and TransformerPolicy's (width 32, 12 latents, 4 heads, 1 layer), both with
attribute embedding 8 and 3 Fourier frequencies, on N = 48 tokens per step (Metta's max_tokens), a quarter of
them padding. One round = loss = sum(w * encoder(obs)), d loss / d params, for each model in turn; rounds
interleave JAX and torch so that load from other processes spreads evenly; reported: medians, the ratio
torch / JAX and tokens per second (B * T * N / time).

    python experiments/bench_token_encoder.py [--steps 512] [--rounds 7] [--out results/token_encoder_bench.json]
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
import torch  # noqa: E402

import torch_ref  # noqa: E402
from jax_tx.config import preset  # noqa: E402
from jax_tx.io import convert  # noqa: E402
from jax_tx.io.verify import random_tokens  # noqa: E402
from jax_tx.models.encoders.tokens import TokenEncoder  # noqa: E402

SIZES = {
    "cortex_xl": ("metta_cortex_xl", {}),
    "transformer_policy": ("metta_trxl", {}),
}


def setup(name: str, steps: int, tokens: int):
    preset_name, over = SIZES[name]
    cfg = preset(preset_name, obs_dim=tokens, num_actions=5, **over)
    torch.manual_seed(0)
    tmodel = torch_ref.make_policy(cfg)
    params = {"params": convert.torch_to_flax(tmodel.state_dict(), cfg)["params"]["encoder"]}
    obs = random_tokens(cfg, np.random.default_rng(0), 1, steps)
    weights = np.random.default_rng(1).normal(size=(1, steps, cfg.d_model)).astype(np.float32)
    module = TokenEncoder(cfg)

    @jax.jit
    def jax_step(p, o, w):
        return jax.value_and_grad(lambda p: jnp.sum(module.apply(p, o) * w))(p)

    j_obs, j_w = jnp.asarray(obs), jnp.asarray(weights)
    t_obs, t_w = torch.as_tensor(obs), torch.as_tensor(weights)
    encoder = tmodel.encoder

    def run_jax():
        loss, grads = jax_step(params, j_obs, j_w)
        jax.block_until_ready(grads)

    def run_torch():
        encoder.zero_grad()
        (encoder(t_obs) * t_w).sum().backward()

    return cfg, run_jax, run_torch


def timed(fn, iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=512, help="B * T observation steps per call")
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--out", default="experiments/results/token_encoder_bench.json")
    args = p.parse_args()
    runs = {name: setup(name, args.steps, args.tokens) for name in SIZES}
    for _, run_jax, run_torch in runs.values():  # compile and warm up
        run_jax()
        run_torch()
    times = {name: {"jax": [], "torch": []} for name in runs}
    for _ in range(args.rounds):
        for name, (_, run_jax, run_torch) in runs.items():
            times[name]["jax"].append(timed(run_jax, args.iters))
            times[name]["torch"].append(timed(run_torch, args.iters))
    results = {}
    tokens_per_call = args.steps * args.tokens
    for name, (cfg, _, _) in runs.items():
        j, t = statistics.median(times[name]["jax"]), statistics.median(times[name]["torch"])
        results[name] = {
            "perceiver_width": cfg.latent_dim,
            "latents": cfg.token_num_latents,
            "heads": cfg.token_num_heads,
            "layers": cfg.token_num_layers,
            "jax_ms": 1e3 * j,
            "torch_ms": 1e3 * t,
            "torch_over_jax": t / j,
            "jax_tokens_per_s": tokens_per_call / j,
            "torch_tokens_per_s": tokens_per_call / t,
        }
        print(
            f"{name:20s} jax {1e3 * j:8.2f} ms  torch {1e3 * t:8.2f} ms  ratio {t / j:5.2f}  "
            f"jax {tokens_per_call / j:,.0f} tok/s  torch {tokens_per_call / t:,.0f} tok/s"
        )
    meta = {
        "what": "token encoder forward+backward (d sum(w * x) / d params), medians over interleaved rounds",
        "steps_per_call": args.steps,
        "tokens_per_step": args.tokens,
        "padding_fraction": 0.25,
        "rounds": args.rounds,
        "iters_per_round": args.iters,
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "note": "shared machine: compare the ratio, not absolute times",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
