"""Policy configuration: one frozen dataclass shared by the JAX and PyTorch twins.

This module imports neither jax nor torch, so `torch_ref` and tools can read it.
The per-variant defaults live in `jax_tx.config.presets`; a run prints the fully resolved
config and stores it (as JSON, see `to_json`) with every checkpoint.

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
    slot_remat: bool = False
    """slot (JAX only): rematerialise each slot-encoder layer in the backward pass (jax.checkpoint): the
    same outputs and parameters, less activation memory, more compute. The torch twin ignores it."""

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
    _require(isinstance(cfg.slot_remat, bool), "slot_remat", cfg.slot_remat, "must be true or false")
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
