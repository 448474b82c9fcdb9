"""Policy configuration: one frozen dataclass shared by the JAX and PyTorch twins.

This module imports neither jax nor torch, so `torch_ref` and tools can read it.
Every default lives here, in `PRESETS`; a run prints the fully resolved config and
stores it (as JSON, see `to_json`) with every checkpoint.

    cfg = preset("trxl", obs_dim=12, num_actions=5, d_model=64)
    assert PolicyConfig.from_json(cfg.to_json()) == cfg
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any

SCHEMA_VERSION = 1

XL_VARIANTS = ("gtrxl", "trxl", "trxl_nvidia")
AGALITE_VARIANTS = ("agalite", "agalite_fast", "agalite_optimized", "agalite_hybrid")
VARIANTS = XL_VARIANTS + AGALITE_VARIANTS + ("sliding", "lstm", "slot", "mlp")

DTYPES = ("float32", "bfloat16", "float64")
GATINGS = ("none", "gru", "fused_gru")
POOLINGS = ("cls", "mean", "none")
AGALITE_MODES = ("standard", "fast")


@dataclass(frozen=True)
class PolicyConfig:
    """Everything needed to build a policy (encoder -> backbone -> heads) in either twin.

    Fields that a variant does not use keep their defaults and are ignored by it.
    """

    variant: str
    obs_dim: int
    num_actions: int

    # --- widths shared by the attention variants
    d_model: int = 128
    """Width of the residual stream (D)."""
    num_layers: int = 2
    num_heads: int = 4
    d_head: int = 0
    """Per-head width; 0 means d_model // num_heads."""
    d_ff: int = 512
    """Hidden width of the position-wise feed-forward."""

    # --- heads (Metta TransformerPolicy: actor ReLU(D->256)->A, critic Tanh(D->512)->1)
    actor_hidden: int = 256
    critic_hidden: int = 512

    # --- numerics and regularisation
    dropout: float = 0.0
    """Dropout on sublayer outputs (only when apply/forward is asked for it)."""
    attn_dropout: float = 0.0
    """Dropout on attention probabilities."""
    layer_norm_eps: float = 1e-5
    """Set on both twins explicitly (torch default 1e-5, flax default 1e-6)."""
    dtype: str = "float32"
    """Compute dtype: float32, bfloat16 (params stay float32) or float64 (parity tests)."""

    # --- Transformer-XL family (gtrxl, trxl, trxl_nvidia)
    memory_len: int = 64
    """M: layer inputs kept from earlier steps, per layer."""
    pre_norm: bool = True
    """LayerNorm on the sublayer input (pre-norm) or after the residual sum (post-norm)."""
    gating: str = "none"
    """Residual combiner: none (x + y), gru (Parisotto GRU gate), fused_gru (Metta's gate)."""
    gate_bias: float = 2.0
    """Initial value of the learnable gate bias b_g (z = sigmoid(... - b_g))."""
    sublayer_relu: bool = False
    """ReLU on sublayer outputs before the residual/gate (GTrXL identity-map reordering)."""
    clamp_len: int = -1
    """Relative distances >= clamp_len share one embedding; -1 disables clamping."""
    same_length: bool = True
    """Every query sees keys at distance 0..memory_len (NVIDIA same_length). Needed for
    sequence mode == step mode; False lets segment queries see all earlier keys."""

    # --- AGaLiTe family
    eta: int = 4
    """Feature-map expansion (eta)."""
    num_oscillators: int = 8
    """r: cosine oscillators, omega = linspace(-pi, pi, r)."""
    agalite_mode: str = "standard"
    """standard: gated block with norm and feed-forward; fast: fused projection, plain residual."""
    agalite_eps: float = 1e-5
    clamp_gates: bool = False
    """Clamp beta and gamma to [0.05, 0.95] (Metta's stability guard)."""
    clamp_output: bool = False
    """Clamp the fast layer's attention output to [-10, 10] (Metta's fast-mode guard)."""
    lstm_hidden: int = 0
    """LSTM width for lstm / agalite_hybrid / slot; 0 means d_model."""

    # --- sliding-window transformer
    max_cache_size: int = 80
    """Key/value cache length in tokens (4 tokens per step)."""
    pooling: str = "mean"
    cache_across_resets: bool = False
    """Metta's behaviour: the cache stays visible across episode boundaries."""

    # --- auxiliary history tokens (any attention variant)
    aux_tokens: bool = False
    """Add projections of previous reward, reset flag and previous action to the latent."""

    # --- slot transformer actor-critic (slot): obs = [base | slot_0 | ... | slot_{N-1}]
    base_dim: int = 0
    """slot: width of the base (global) features at the front of each observation; 0 = unset
    (the slot variant requires it, >= 1)."""
    slot_dim: int = 0
    """slot: features per slot, feature 0 = active flag (active iff > 0.5); 0 = unset (the slot
    variant requires it, >= 1). N = (obs width - base_dim) / slot_dim is read from each input."""
    slot_grid_rows: int = 8
    """slot: rows of the learned row/column position grid; slot i sits at row i // slot_grid_cols."""
    slot_grid_cols: int = 8
    """slot: columns of the grid; slot i sits at column i % slot_grid_cols. At most rows * cols slots."""

    @property
    def head_dim(self) -> int:
        return self.d_head or self.d_model // self.num_heads

    @property
    def lstm_width(self) -> int:
        return self.lstm_hidden or self.d_model

    def replace(self, **changes: Any) -> PolicyConfig:
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        validate(self)

    # --- JSON round trip
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["schema_version"] = SCHEMA_VERSION
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        d = dict(d)
        version = d.pop("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ConfigError(
                f"config schema_version {version!r} is newer than this jax_tx understands "
                f"({SCHEMA_VERSION}); upgrade jax_tx to read it"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> PolicyConfig:
        return cls.from_dict(json.loads(text))


class ConfigError(ValueError):
    """A config field holds a value that cannot work; the message names the field."""


def _require(ok: bool, field: str, value: Any, why: str) -> None:
    if not ok:
        raise ConfigError(f"config field {field}={value!r}: {why}")


def validate(cfg: PolicyConfig) -> None:
    """Raise ConfigError naming the first bad field."""
    _require(cfg.variant in VARIANTS, "variant", cfg.variant, f"must be one of {VARIANTS}")
    for name in ("obs_dim", "num_actions", "d_model", "num_layers", "num_heads", "d_ff"):
        v = getattr(cfg, name)
        _require(isinstance(v, int) and not isinstance(v, bool) and v > 0, name, v, "must be a positive int")
    for name in ("actor_hidden", "critic_hidden", "eta", "num_oscillators", "max_cache_size"):
        v = getattr(cfg, name)
        _require(isinstance(v, int) and v > 0, name, v, "must be a positive int")
    _require(isinstance(cfg.d_head, int) and cfg.d_head >= 0, "d_head", cfg.d_head, "must be >= 0")
    _require(isinstance(cfg.lstm_hidden, int) and cfg.lstm_hidden >= 0, "lstm_hidden", cfg.lstm_hidden, "must be >= 0")
    if cfg.d_head == 0:
        _require(
            cfg.d_model % cfg.num_heads == 0,
            "num_heads",
            cfg.num_heads,
            f"must divide d_model={cfg.d_model} (or set d_head explicitly)",
        )
    for name in ("dropout", "attn_dropout"):
        v = getattr(cfg, name)
        _require(isinstance(v, (int, float)) and 0.0 <= v < 1.0, name, v, "must be in [0, 1)")
    _require(cfg.layer_norm_eps > 0, "layer_norm_eps", cfg.layer_norm_eps, "must be > 0")
    _require(cfg.dtype in DTYPES, "dtype", cfg.dtype, f"must be one of {DTYPES}")
    _require(cfg.gating in GATINGS, "gating", cfg.gating, f"must be one of {GATINGS}")
    _require(cfg.pooling in POOLINGS, "pooling", cfg.pooling, f"must be one of {POOLINGS}")
    _require(cfg.agalite_mode in AGALITE_MODES, "agalite_mode", cfg.agalite_mode, f"must be one of {AGALITE_MODES}")
    _require(isinstance(cfg.memory_len, int) and cfg.memory_len >= 1, "memory_len", cfg.memory_len, "must be >= 1")
    _require(
        isinstance(cfg.clamp_len, int) and (cfg.clamp_len == -1 or cfg.clamp_len > 0),
        "clamp_len",
        cfg.clamp_len,
        "must be -1 (off) or > 0",
    )
    for name in ("base_dim", "slot_dim", "slot_grid_rows", "slot_grid_cols"):
        v = getattr(cfg, name)
        _require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, name, v, "must be an int >= 0")
    if cfg.variant == "slot":
        _validate_slot(cfg)


# Slot-selection logit of an inactive slot (both twins): finite, so softmax stays defined.
SLOT_INACTIVE_LOGIT = -1e9


def _validate_slot(cfg: PolicyConfig) -> None:
    layout = "the observation layout [base | slot_0 | ... | slot_{N-1}] (e.g. base_dim=4, slot_dim=5)"
    for name in ("base_dim", "slot_dim"):
        _require(getattr(cfg, name) >= 1, name, getattr(cfg, name), f"the slot variant needs it set to {layout}")
    for name in ("slot_grid_rows", "slot_grid_cols"):
        _require(getattr(cfg, name) >= 1, name, getattr(cfg, name), "must be >= 1 for the slot variant")
    _require(cfg.d_model % 2 == 0, "d_model", cfg.d_model, "must be even for slot (row and column halves)")
    _require(not cfg.aux_tokens, "aux_tokens", cfg.aux_tokens, "the slot variant has no auxiliary tokens")
    try:
        slot_count(cfg, cfg.obs_dim)
    except ValueError as err:
        raise ConfigError(f"config field obs_dim={cfg.obs_dim!r}: {err}") from None


def slot_count(cfg: PolicyConfig, width: int) -> int:
    """N for a flat slot observation of `width` features: width = base_dim + N * slot_dim, 1 <= N <= rows * cols."""
    max_slots = cfg.slot_grid_rows * cfg.slot_grid_cols
    n, rem = divmod(width - cfg.base_dim, cfg.slot_dim)
    if rem or not 1 <= n <= max_slots:
        raise ValueError(
            f"obs width {width} is not base_dim={cfg.base_dim} + N * slot_dim={cfg.slot_dim} with "
            f"1 <= N <= slot_grid_rows * slot_grid_cols = {max_slots}; pass observations laid out as "
            f"[base | slot_0 | ... | slot_(N-1)] or change base_dim / slot_dim / the slot grid in the config"
        )
    return n


# Seeds' defaults per variant. `paper` sizes follow the issue text (original module
# constructors); `metta_small` are the sizes the Metta recipes trained with.
PRESETS: dict[str, dict[str, Any]] = {
    "gtrxl": dict(
        d_model=128,
        num_layers=6,
        num_heads=8,
        d_ff=512,
        memory_len=64,
        pre_norm=True,
        gating="gru",
        gate_bias=2.0,
        sublayer_relu=True,
    ),
    "trxl": dict(d_model=256, num_layers=6, num_heads=8, d_ff=1024, memory_len=64, pre_norm=True),
    "trxl_nvidia": dict(d_model=512, num_layers=16, num_heads=8, d_ff=2048, memory_len=192, pre_norm=False),
    "agalite": dict(
        d_model=256,
        num_layers=2,
        num_heads=4,
        d_head=64,
        d_ff=1024,
        eta=4,
        num_oscillators=8,
        agalite_mode="standard",
    ),
    "agalite_fast": dict(
        d_model=256,
        num_layers=2,
        num_heads=4,
        d_head=64,
        d_ff=1024,
        eta=2,
        num_oscillators=4,
        agalite_mode="fast",
        clamp_output=True,
        agalite_eps=1e-6,
    ),
    "agalite_optimized": dict(
        d_model=256,
        num_layers=2,
        num_heads=4,
        d_head=64,
        d_ff=1024,
        eta=3,
        num_oscillators=6,
        agalite_mode="fast",
        dropout=0.05,
        clamp_output=True,
        agalite_eps=1e-6,
    ),
    "agalite_hybrid": dict(
        d_model=256,
        num_layers=2,
        num_heads=4,
        d_head=64,
        d_ff=1024,
        eta=4,
        num_oscillators=8,
        agalite_mode="standard",
        lstm_hidden=256,
    ),
    "sliding": dict(d_model=16, num_layers=2, num_heads=1, d_ff=64, max_cache_size=80, pooling="mean"),
    "lstm": dict(d_model=128, num_layers=1),  # lstm_hidden 0: the LSTM is d_model wide, no projection
    "slot": dict(d_model=64, num_layers=2, num_heads=4, d_ff=256, lstm_hidden=128),
    "mlp": dict(d_model=64, num_layers=1),
}

# The small sizes Metta's recipes trained with (metta_torch_stack.md sections 2-4, 7.3).
METTA_SMALL: dict[str, dict[str, Any]] = {
    "gtrxl": dict(d_model=32, num_layers=1, num_heads=2, d_ff=128, memory_len=32, dropout=0.05, attn_dropout=0.05),
    "trxl": dict(d_model=32, num_layers=1, num_heads=2, d_ff=128, memory_len=32, dropout=0.05, attn_dropout=0.05),
    "trxl_nvidia": dict(d_model=40, num_layers=1, num_heads=2, d_ff=160, memory_len=16, dropout=0.05),
    "agalite": dict(d_model=64, num_layers=3, num_heads=4, d_head=16, d_ff=256, eta=6, num_oscillators=2, dropout=0.05),
}


def preset(variant: str, obs_dim: int, num_actions: int, size: str = "default", **overrides: Any) -> PolicyConfig:
    """The resolved config of `variant`: preset defaults, then `overrides`.

    Args:
      size: "default" (the seeds' module defaults) or "metta_small" (Metta recipe sizes).
    """
    if variant not in PRESETS:
        raise ConfigError(f"config field variant={variant!r}: must be one of {VARIANTS}")
    base = dict(PRESETS[variant])
    if size == "metta_small":
        if variant not in METTA_SMALL:
            raise ConfigError(f"size='metta_small' has no entry for variant {variant!r}; known: {sorted(METTA_SMALL)}")
        base.update(METTA_SMALL[variant])
    elif size != "default":
        raise ConfigError(f"size={size!r}: must be 'default' or 'metta_small'")
    known = {f.name for f in fields(PolicyConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
    base.update(overrides)
    return PolicyConfig(variant=variant, obs_dim=obs_dim, num_actions=num_actions, **base)


# --------------------------------------------------------------------------- training
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("cosine", "linear", "constant")


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
        for name in ("lr_final", "weight_decay", "max_grad_norm"):
            v = getattr(self, name)
            _require(v >= 0, name, v, "must be >= 0")
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
    checkpoint_every: int = 0
    """Save a checkpoint every N iterations (and at the end); 0: only at the end."""
    eval_episodes: int = 0

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
        for name in ("checkpoint_every", "eval_episodes"):
            v = getattr(self, name)
            _require(isinstance(v, int) and v >= 0, name, v, "must be an int >= 0")
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
