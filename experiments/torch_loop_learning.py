"""Same algorithm, same config, two learners: jax_tx's jitted PPO vs torch_ref.ppo_loop.TorchPPO on T-Maze.

The config of tests/test_learning.py (gtrxl d_model 32, 1 layer, corridor 4, 32 envs x 32 steps, H = 8, 80
iterations = 81,920 env steps), seeds 0..S-1 in each learner. Reported per learner: the success of each iteration
(episodes that ended), the final success (mean of the last 5 iterations), wall seconds and env steps/s (the JAX
figure without its first, compiling call). Saves experiments/results/torch_loop_tmaze.json.

    python experiments/torch_loop_learning.py [--seeds 1] [--iterations 80] [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from jax_tx import config  # noqa: E402
from jax_tx.ppo.trainer import Trainer  # noqa: E402
from torch_ref.ppo_loop import TorchPPO  # noqa: E402

CORRIDOR = 4


def train_config(iterations: int, seed: int) -> config.TrainConfig:
    pc = config.preset(
        "gtrxl",
        4,
        3,
        d_model=32,
        num_layers=1,
        num_heads=2,
        d_ff=64,
        memory_len=CORRIDOR + 4,
        actor_hidden=64,
        critic_hidden=64,
    )
    ppo = config.PPOConfig(
        bptt_horizon=8,
        num_minibatches=4,
        update_epochs=4,
        learning_rate=1e-3,
        lr_final=1e-4,
        ent_coef=0.01,
        ent_coef_final=0.0,
    )
    return config.TrainConfig(
        policy=pc,
        ppo=ppo,
        env="tmaze",
        env_kwargs={"corridor_length": CORRIDOR},
        num_envs=32,
        rollout_steps=32,
        total_steps=iterations * 32 * 32,
        seed=seed,
        iterations_per_call=10,
    )


def run_jax(tc: config.TrainConfig) -> dict:
    tr = Trainer(tc)
    state, success, times = tr.init(), [], []
    for _ in range(tc.num_iterations // tc.iterations_per_call):
        start = time.perf_counter()
        state, metrics = tr.run(state)
        success += [float(x) for x in np.asarray(jax.block_until_ready(metrics)["success"])]
        times.append(time.perf_counter() - start)
    steps = tc.steps_per_iteration * tc.iterations_per_call
    return {"success": success, "wall_s": sum(times), "sps_after_compile": steps * (len(times) - 1) / sum(times[1:])}


def run_torch(tc: config.TrainConfig) -> dict:
    loop = TorchPPO(tc)
    rows = loop.fit(tc.num_iterations)
    wall = sum(r["wall_s"] for r in rows)
    return {"success": [r["success"] for r in rows], "wall_s": wall, "sps": tc.steps_per_iteration * len(rows) / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=80)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "torch_loop_tmaze.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    load0 = os.getloadavg()
    runs = {"jax": [], "torch": []}
    for seed in range(args.seeds):
        tc = train_config(args.iterations, seed)
        for name, fn in (("jax", run_jax), ("torch", run_torch)):
            r = fn(tc)
            r["final_success"] = float(np.nanmean(r["success"][-5:]))
            r["first_success"] = float(np.nanmean(r["success"][:3]))
            runs[name].append(r)
            print(
                f"seed {seed} {name}: success {r['first_success']:.2f} -> {r['final_success']:.3f} "
                f"in {r['wall_s']:.0f}s",
                flush=True,
            )
    result = {
        "what": "gtrxl on T-Maze corridor 4, the config of tests/test_learning.py, jax_tx PPO vs torch_ref loop",
        "train_config": train_config(args.iterations, 0).to_dict(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "loadavg_start": load0,
            "loadavg_end": os.getloadavg(),
            "note": "shared machine",
        },
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
