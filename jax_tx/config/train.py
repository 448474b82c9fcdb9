"""PPO and training-run configuration (no jax, no torch): PPOConfig, TrainConfig."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any

from jax_tx.config.policy import SCHEMA_VERSION, ConfigError, PolicyConfig, _require

OPTIMIZERS = ("adam", "adamw")
ON_NONFINITE = ("stop", "skip")
LR_SCHEDULES = ("cosine", "linear", "constant")
PARAM_SHARDINGS = ("replicated", "fsdp")


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters and their schedules (progress p = iteration / num_iterations).

    lr:     linear warmup 0 -> learning_rate over `lr_warmup_iterations`, then `lr_schedule` to lr_final
    ent:    linear ent_coef -> ent_coef_final
    clip:   log-linear clip_coef -> clip_coef_final       (exp((1-p) log a + p log b))
    vclip:  linear vf_clip_coef -> vf_clip_coef_final
    Set a *_final equal to its start value to hold it constant.
    """

    gamma: float = 0.99
    gae_lambda: float = 0.95
    vtrace: bool = False
    """Recompute advantages per minibatch with V-trace clipped ratios (Metta's trainer)."""
    vtrace_rho_clip: float = 1.0
    vtrace_c_clip: float = 1.0

    bptt_horizon: int = 16
    """H: steps per training segment; the rollout stores the memory at each segment's first step."""
    num_minibatches: int = 4
    update_epochs: int = 4
    norm_adv: bool = True

    clip_coef: float = 0.1
    clip_coef_final: float = 0.05
    clip_vloss: bool = True
    vf_clip_coef: float = 0.1
    vf_clip_coef_final: float = 0.05
    vf_coef: float = 0.5
    ent_coef: float = 0.0021
    ent_coef_final: float = 0.0

    optimizer: str = "adam"
    learning_rate: float = 4.57e-4
    lr_final: float = 3e-5
    lr_schedule: str = "cosine"
    lr_warmup_iterations: int = 0
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-5
    weight_decay: float = 0.0
    """Decoupled weight decay; only used by optimizer='adamw'."""
    max_grad_norm: float = 0.5

    def replace(self, **changes: Any) -> PPOConfig:
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        for name in ("gamma", "gae_lambda"):
            v = getattr(self, name)
            _require(0.0 <= v <= 1.0, name, v, "must be in [0, 1]")
        for name in ("bptt_horizon", "num_minibatches", "update_epochs"):
            v = getattr(self, name)
            _require(isinstance(v, int) and not isinstance(v, bool) and v > 0, name, v, "must be a positive int")
        for name in ("clip_coef", "clip_coef_final", "vtrace_rho_clip", "vtrace_c_clip", "adam_eps"):
            v = getattr(self, name)
            _require(v > 0, name, v, "must be > 0")
        for name in ("vf_clip_coef", "vf_clip_coef_final", "vf_coef", "ent_coef", "ent_coef_final", "learning_rate"):
            v = getattr(self, name)
            _require(v >= 0, name, v, "must be >= 0")
        for name in ("lr_final", "weight_decay"):
            v = getattr(self, name)
            _require(v >= 0, name, v, "must be >= 0")
        _require(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "must be > 0 (0 would zero every update)")
        _require(0 <= self.adam_b1 < 1, "adam_b1", self.adam_b1, "must be in [0, 1)")
        _require(0 <= self.adam_b2 < 1, "adam_b2", self.adam_b2, "must be in [0, 1)")
        _require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"must be one of {OPTIMIZERS}")
        _require(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule, f"must be one of {LR_SCHEDULES}")
        _require(self.lr_warmup_iterations >= 0, "lr_warmup_iterations", self.lr_warmup_iterations, "must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PPOConfig:
        return cls(**_known_fields(cls, d, "ppo"))


@dataclass(frozen=True)
class TrainConfig:
    """One training run: policy, PPO, environment and loop settings. JSON-round-trips.

    Batch per iteration = num_envs * rollout_steps steps, cut into segments of
    ppo.bptt_horizon steps: num_envs * rollout_steps / bptt_horizon segments, split into
    ppo.num_minibatches minibatches.
    """

    policy: PolicyConfig
    ppo: PPOConfig = PPOConfig()
    env: str = "tmaze"
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_envs: int = 64
    rollout_steps: int = 64
    total_steps: int = 1_000_000
    """Environment steps (over all envs); iterations = total_steps // (num_envs * rollout_steps)."""
    seed: int = 0
    iterations_per_call: int = 1
    """Iterations fused under one jitted lax.scan between two Python logging points."""
    log_dir: str = "runs/default"
    checkpoint_every: int = 100
    """Save a checkpoint at every multiple of N iterations (and at the end); 0: not by iterations."""
    eval_episodes: int = 0
    checkpoint_minutes: float = 5.0
    """Also save a checkpoint when this many wall minutes passed since the last one; 0: not by time."""
    on_nonfinite: str = "stop"
    """A non-finite observation, reward, loss, gradient or parameter: stop (exit 3, nothing non-finite saved)
    or skip (drop that update, count it)."""
    devices: int = 0
    """Devices of the data-parallel mesh: 0 = every visible device (of every process), 1 = one device."""
    param_sharding: str = "replicated"
    """"replicated": params and optimizer state on every device; "fsdp": each leaf split over the mesh."""

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_steps // self.steps_per_iteration)

    @property
    def num_segments(self) -> int:
        return self.num_envs * (self.rollout_steps // self.ppo.bptt_horizon)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        _require(isinstance(self.policy, PolicyConfig), "policy", type(self.policy).__name__, "must be a PolicyConfig")
        _require(isinstance(self.ppo, PPOConfig), "ppo", type(self.ppo).__name__, "must be a PPOConfig")
        _require(isinstance(self.env, str) and bool(self.env), "env", self.env, "must be a non-empty env name")
        for name in ("num_envs", "rollout_steps", "total_steps", "iterations_per_call"):
            v = getattr(self, name)
            _require(isinstance(v, int) and not isinstance(v, bool) and v > 0, name, v, "must be a positive int")
        for name in ("checkpoint_every", "eval_episodes", "devices"):
            v = getattr(self, name)
            _require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, name, v, "must be an int >= 0")
        m = self.checkpoint_minutes
        _require(isinstance(m, (int, float)) and not isinstance(m, bool) and m >= 0, "checkpoint_minutes", m,
                 "must be >= 0 (0: no checkpoints by time)")  # fmt: skip
        _require(self.on_nonfinite in ON_NONFINITE, "on_nonfinite", self.on_nonfinite, f"must be one of {ON_NONFINITE}")
        _require(
            self.total_steps >= self.steps_per_iteration,
            "total_steps",
            self.total_steps,
            f"must be >= num_envs*rollout_steps={self.steps_per_iteration} (one iteration); raise it or use "
            f"fewer --num-envs / --rollout-steps",
        )
        _require(
            self.param_sharding in PARAM_SHARDINGS,
            "param_sharding",
            self.param_sharding,
            f"must be one of {PARAM_SHARDINGS}",
        )
        h = self.ppo.bptt_horizon
        _require(
            self.rollout_steps % h == 0, "rollout_steps", self.rollout_steps, f"must be a multiple of bptt_horizon={h}"
        )
        _require(
            self.num_segments % self.ppo.num_minibatches == 0,
            "num_minibatches",
            self.ppo.num_minibatches,
            f"must divide the number of segments num_envs*rollout_steps/bptt_horizon={self.num_segments}",
        )

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["policy"] = self.policy.to_dict()
        d["ppo"] = self.ppo.to_dict()
        d["env_kwargs"] = dict(self.env_kwargs)
        d["schema_version"] = SCHEMA_VERSION
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d.pop("schema_version", None)
        d.pop("provenance", None)  # written beside the config in LOG_DIR/config.json
        d = _known_fields(cls, d, "train")
        d["policy"] = PolicyConfig.from_dict(d["policy"])
        d["ppo"] = PPOConfig.from_dict(d.get("ppo", {}))
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))


def _known_fields(cls: type, d: dict[str, Any], what: str) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {what} config field(s) {unknown}; known fields: {sorted(known)}")
    return dict(d)
