"""Root-cause studies for the suite (issue 15): each a set of learning_suite runs that tests one hypothesis.

    python experiments/suite_studies.py lstm_tmaze      # why lstm fails T-Maze 10
    python experiments/suite_studies.py agalite_repeat  # why agalite fails RepeatPrevious k=4

Rows land in results/suite/runs.csv tagged "study:<name>:<point>"; experiments/SUITE.md reads them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import learning_suite as suite  # noqa: E402

SEEDS = [0, 1, 2]


def forget_bias(value: float):
    """A params hook: the LSTM forget-gate block of bias_ih (gate order i, f, g, o) set to `value` in every layer.
    sigmoid(1) = 0.73 keeps 0.73^10 = 4% of a cue after 10 steps at init; sigmoid(3) = 0.95 keeps 60%."""

    def hook(params):
        def edit(path, x):
            if getattr(path[-1], "key", None) != "bias_ih_l0":
                return x
            h = x.shape[-1] // 4
            return x.at[..., h : 2 * h].set(value)

        return jax.tree_util.tree_map_with_path(edit, params)

    return hook


def gru_chrono(t_max: int, seed: int = 0):
    """A params hook: chrono initialisation (Tallec & Ollivier 2018) of the GRU update gate, b_z = log(u),
    u ~ Uniform(1, t_max - 1) per unit (the z block of bias_ih, gate order r, z, n). Unit j then keeps
    sigmoid(b_z) = 1 - 1/u_j of h per step at init: timescales spread over 1..t_max steps, so some units write
    strongly and others hold, instead of one bias trading the write (1 - z) against the hold (z) for every unit."""

    def hook(params):
        def edit(path, x):
            if getattr(path[-1], "key", None) != "bias_ih_l0":
                return x
            h = x.shape[-1] // 3
            u = np.random.default_rng(seed).uniform(1.0, t_max - 1.0, size=h)
            return x.at[..., h : 2 * h].set(np.log(u).astype(np.float32))

        return jax.tree_util.tree_map_with_path(edit, params)

    return hook


def encoder_bias_uniform(seed: int = 0):
    """A params hook: the encoder bias drawn from Uniform(-1/sqrt(obs_dim), 1/sqrt(obs_dim)) (torch nn.Linear's
    default) instead of zeros. With zero biases an all-zero observation (the memory probe's `zero` decision step;
    MemoryChain's own is [1/L, 0, 0], see experiments/SUITE.md) embeds to ReLU(0) = 0, LayerNorm(0) = 0, so
    AGaLiTe's query q = 0 and phi(q) = relu(q) x relu(p2) = 0: the read-out is 0 and relu'(0) = 0 passes no
    gradient. A non-constant bias makes that step's embedding a fixed non-zero vector."""

    def hook(params):
        def edit(path, x):
            names = [getattr(k, "key", "") for k in path]
            if names[-2:] != ["encoder", "bias"]:
                return x
            kernel_rows = params["params"]["encoder"]["kernel"].shape[-2]
            bound = kernel_rows**-0.5
            u = np.random.default_rng(seed).uniform(-bound, bound, size=x.shape[-1])
            return x + u.astype(np.float32)

        return jax.tree_util.tree_map_with_path(edit, params)

    return hook


def compose(*hooks):
    """A params hook applying `hooks` in order."""

    def hook(params):
        for h in hooks:
            params = h(params)
        return params

    return hook


def agalite_gate_bias(value: float, nh: int = 2, dh: int = 16):
    """A params hook: the bias of AGaLiTe's beta and gamma projections (blocks 3 and 4 of the k, q, v, beta, gamma
    Dense, layout [H, 5, D]; agalite_fast's fused kqvbgp the same in its first 5 H D outputs) set to `value`.
    Memory retention per step is 1 - sigmoid(gamma_raw) sigmoid(p3) for keys and 1 - sigmoid(beta_raw) for values:
    0.75 / 0.5 at init (0.75^64 = 1e-8 after MemoryChain-64's span), 0.99 / 0.98 at value -4."""

    def hook(params):
        def edit(path, x):
            names = [getattr(k, "key", "") for k in path]
            if names[-1] != "bias" or not ({"kqvbg", "kqvbgp"} & set(names)):
                return x
            blocks = x[..., : nh * 5 * dh].reshape(*x.shape[:-1], nh, 5, dh)
            blocks = blocks.at[..., 3:5, :].set(value).reshape(*x.shape[:-1], nh * 5 * dh)
            return x.at[..., : nh * 5 * dh].set(blocks)

        return jax.tree_util.tree_map_with_path(edit, params)

    return hook


FORGET1 = {"policy.lstm_forget_bias": 1.0}
"""The forget-gate bias the lstm recipes had before this study (the suite's lstm recipe now sets 3.0)."""

BPTT128 = {"ppo.bptt_horizon": 128, "rollout_steps": 128}
BPTT256 = {"ppo.bptt_horizon": 256, "rollout_steps": 256}
AUX_BPTT128 = {"policy.aux_tokens": True, **BPTT128}
"""Aux tokens (previous action and reward) make the decision-step input clearly non-zero (studied on the premise,
since found wrong, that MemoryChain's decision observation is all zeros: it is [1/L, 0, 0]); BPTT 128 lets the
gradient reach the cue written at the episode's first step."""

STUDIES = {
    # study -> points (name, task, variant, recipe overrides, params hook[, budget fraction])
    "lstm_tmaze": [
        ("bptt16", "tmaze10", "lstm", {**FORGET1, "ppo.bptt_horizon": 16, "rollout_steps": 32}, None),
        ("bptt32", "tmaze10", "lstm", {**FORGET1, "ppo.bptt_horizon": 32, "rollout_steps": 64}, None),
        ("bptt64", "tmaze10", "lstm", {**FORGET1, "ppo.bptt_horizon": 64, "rollout_steps": 64}, None),
        ("forget3", "tmaze10", "lstm", FORGET1, forget_bias(3.0)),
        ("stepcost", "tmaze10", "lstm", {**FORGET1, "env_kwargs.step_reward": -0.01}, None),
        ("stepcost_forget3", "tmaze10", "lstm", {**FORGET1, "env_kwargs.step_reward": -0.01}, forget_bias(3.0)),
        ("field_forget3", "tmaze10", "lstm", {"policy.lstm_forget_bias": 3.0}, None),
    ],
    "gru_tmaze": [
        ("update0", "tmaze10", "gru", {"policy.gru_update_bias": 0.0}, None),
        ("update3", "tmaze10", "gru", {"policy.gru_update_bias": 3.0}, None),
    ],
    "gru_memchain": [
        ("chrono64", "memchain64", "gru", {}, gru_chrono(64)),
        ("chrono64_width64", "memchain64", "gru", {"policy.lstm_hidden": 64}, gru_chrono(64)),
    ],
    "agalite_memchain": [
        ("gates-4", "memchain64", "agalite", {}, agalite_gate_bias(-4.0)),
        ("fast_gates-4", "memchain64", "agalite_fast", {}, agalite_gate_bias(-4.0)),
        ("aux_bptt128_gates-4", "memchain64", "agalite", AUX_BPTT128, agalite_gate_bias(-4.0)),
        ("fast_aux_bptt128_gates-4", "memchain64", "agalite_fast", AUX_BPTT128, agalite_gate_bias(-4.0)),
        ("aux_budget2", "memchain64", "agalite", {"policy.aux_tokens": True}, None, 2.0),
    ],
    "agalite_zero_query": [
        ("encbias", "memchain64", "agalite", {}, encoder_bias_uniform()),
        ("encbias_bptt128", "memchain64", "agalite", BPTT128, encoder_bias_uniform()),
        ("fast_encbias_bptt128", "memchain64", "agalite_fast", BPTT128, encoder_bias_uniform()),
        ("sliding_encbias", "memchain64", "sliding", {}, encoder_bias_uniform()),
        (
            "encbias_bptt128_gates-4",
            "memchain64",
            "agalite",
            BPTT128,
            compose(encoder_bias_uniform(), agalite_gate_bias(-4.0)),
        ),
        (
            "fast_encbias_bptt128_gates-4",
            "memchain64",
            "agalite_fast",
            BPTT128,
            compose(encoder_bias_uniform(), agalite_gate_bias(-4.0)),
        ),
    ],
    "agalite_tmaze": [
        ("bptt256_gates-4", "tmaze50", "agalite", BPTT256, agalite_gate_bias(-4.0)),
        ("fast_bptt256_gates-4", "tmaze50", "agalite_fast", BPTT256, agalite_gate_bias(-4.0)),
        ("bptt256_gates-4_budget2", "tmaze50", "agalite", BPTT256, agalite_gate_bias(-4.0), 2.0),
        ("fast_bptt256_gates-4_budget2", "tmaze50", "agalite_fast", BPTT256, agalite_gate_bias(-4.0), 2.0),
    ],
    "agalite_repeat": [
        ("base", "repeat4", "agalite", {}, None),
        ("orthogonal", "repeat4", "agalite", {"policy.init": "orthogonal"}, None),
        ("lr3e-4", "repeat4", "agalite", {"ppo.learning_rate": 3e-4, "ppo.lr_final": 3e-5}, None),
        ("eta8", "repeat4", "agalite", {"policy.eta": 8}, None),
        ("oscillators8", "repeat4", "agalite", {"policy.num_oscillators": 8}, None),
        ("layers2", "repeat4", "agalite", {"policy.num_layers": 2}, None),
        ("k1", "repeat4", "agalite", {"env_kwargs.k": 1}, None, 0.5),
        ("k2", "repeat4", "agalite", {"env_kwargs.k": 2}, None, 0.5),
    ],
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = argv[0].split(",") if argv else list(STUDIES)
    points = argv[1].split(",") if len(argv) > 1 else None
    for name in names:
        for point, task, variant, over, hook, *budget in STUDIES[name]:
            if points is None or point in points:
                tag, frac = f"study:{name}:{point}", budget[0] if budget else 1.0
                suite.run_suite(task, variant, SEEDS, over, tag, frac, params_hook=hook)
    return 0


if __name__ == "__main__":
    sys.exit(main())
