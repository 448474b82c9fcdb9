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
import math
from dataclasses import dataclass, fields
from typing import Any

from jax_tx.config.init_scheme import INITS

SCHEMA_VERSION = 2
"""2: agalite honours sublayer_relu (version-1 agalite configs are read with sublayer_relu=True, the ReLUs
they always had); new fields (encoder, token_*, Cortex/Metta options) take their defaults."""

XL_VARIANTS = ("gtrxl", "trxl", "trxl_nvidia")
AGALITE_VARIANTS = ("agalite", "agalite_fast", "agalite_optimized", "agalite_hybrid")
VARIANTS = XL_VARIANTS + AGALITE_VARIANTS + ("sliding", "lstm", "gru", "slot", "mlp")

DTYPES = ("float32", "bfloat16", "float64")
GATINGS = ("none", "gru", "fused_gru")
POOLINGS = ("cls", "mean", "none")
SLIDING_POSITIONS = ("sinusoid", "none")
AGALITE_MODES = ("standard", "fast")
AGALITE_GATINGS = ("gru", "none")
ENCODERS = ("mlp", "tokens")
FF_ACTIVATIONS = ("relu", "gelu", "silu")
CRITIC_ACTIVATIONS = ("tanh", "relu")
AGALITE_TICKS = ("jax_tx", "cortex", "official")
AGALITE_KERNELS = ("relu", "eluplus1")
MEMORY_INITS = ("masked", "zeros")
MEMORY_HOLDS = ("inputs", "outputs")
GATE_BIAS_FIELDS = ("lstm_forget_bias", "gru_update_bias", "agalite_gate_bias")
"""Float fields: any finite number; an int (JSON, recipes) is stored as a float."""
TOKEN_PAD = 0xFF
"""A token whose coordinate byte is 0xFF is padding (Metta pads with three 0xFF bytes)."""


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
    actor_layers: int = 1
    """Hidden Linear layers of the actor: a = ReLU(actor_fc y), then actor_fc2 .. actor_fc{k} with a ReLU
    between them and none after the last (k=2 is Cortex's actor MLP D->256 ReLU ->256); logits = actor_out a."""
    critic_activation: str = "tanh"
    """Critic hidden activation: tanh (TransformerPolicy) or relu (Cortex, ViT-sliding)."""

    # --- observation encoder: mlp (flat float obs [B, T, obs_dim]) or tokens (uint8 [B, T, obs_dim, 3])
    encoder: str = "mlp"
    """mlp: ReLU(W obs + b). tokens: Metta's token observations (obs_dim = tokens per step; bytes: packed x/y
    coordinate (x high nibble, y low), attribute id, value; coordinate byte 0xFF = padding) through the
    shim + Fourier tokenizer + Perceiver latent encoder (models/encoders/tokens.py)."""
    token_attr_vocab: int = 256
    """Rows of the attribute embedding; ids must be < this (row 255, if present, is kept at zero)."""
    token_attr_embed_dim: int = 8
    token_fourier_freqs: int = 3
    """K: features cos/sin(xhat 2^k), k < K, per coordinate; token width = attr_embed_dim + 4 K + 1."""
    token_grid_size: int = 11
    """Coordinates x, y must be < this; xhat = 2 x / (grid_size - 1) - 1 (Metta hard-codes 11)."""
    token_value_norms: tuple = ()
    """Per attribute id divisor of the value byte (ids beyond the tuple divide by 1.0; Metta's
    feature_normalizations)."""
    token_latent_dim: int = 0
    """Perceiver width; 0 means d_model. If it differs, a Linear input_proj maps it to d_model."""
    token_num_latents: int = 12
    token_num_heads: int = 4
    token_num_layers: int = 1
    token_mlp_ratio: int = 4
    """Perceiver MLP width = token_mlp_ratio * token_latent_dim (exact erf GELU)."""

    # --- numerics and regularisation
    dropout: float = 0.0
    """Dropout on sublayer outputs (only when apply/forward is asked for it)."""
    attn_dropout: float = 0.0
    """Dropout on attention probabilities."""
    layer_norm_eps: float = 1e-5
    """Set on both twins explicitly (torch default 1e-5, flax default 1e-6)."""
    dtype: str = "float32"
    """Compute dtype: float32, bfloat16 (params stay float32) or float64 (parity tests)."""
    ff_activation: str = "relu"
    """Activation inside the position-wise feed-forward: relu, gelu (exact erf) or silu (Cortex)."""
    norm_bias: bool = True
    """LayerNorms of the core with a bias (Cortex's block norms have none)."""
    final_norm: bool = False
    """A LayerNorm (with bias) on the core output, before the heads (Cortex's stack norm)."""
    init: str = "default"
    """Parameter init: default (each layer's own) or orthogonal (the official AGaLiTe scheme: every Dense
    kernel orthogonal, gain sqrt 2, logits 0.01, value 1.0, zero biases; see jax_tx/config/init_scheme.py)."""

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
    attn_out_bias: bool = False
    """A bias on the relative attention's output projection o_net (Cortex XL, Metta GTrXL)."""
    memory_holds: str = "inputs"
    """inputs: memory keeps each layer's inputs (the paper). outputs: each layer's outputs (Metta's pre-Cortex
    TrXL/NVIDIA; a compatibility option, not advice: sequence mode then differs from step mode)."""
    memory_init: str = "masked"
    """masked: empty memory slots are never attended. zeros: fresh memory is zero rows marked valid, attended
    until the first reset (Metta, Cortex, DI-engine); XL cores and sliding."""

    # --- AGaLiTe family
    eta: int = 4
    """Feature-map expansion (eta)."""
    num_oscillators: int = 8
    """r: cosine oscillators, omega = linspace(-pi, pi, r)."""
    agalite_mode: str = "standard"
    """standard: gated block with norm and feed-forward; fast: fused projection, plain residual."""
    agalite_fast_norm: bool = False
    """fast mode: y = x + attn(LN1(x)), not Metta's x + attn(x); lifts tiny fused projections (experiments/SUITE.md)."""
    agalite_gating: str = "gru"
    """standard block's combiners: gru (the paper's GRU gates) or none (x + y; an ablation, experiments/SUITE.md)."""
    agalite_ff: bool = True
    """standard block's feed-forward; False ends the block at g1 (no LN2, FF, gate2; an ablation, SUITE.md)."""
    agalite_eps: float = 1e-5
    clamp_gates: bool = False
    """Clamp beta and gamma to [0.05, 0.95] (Metta's stability guard)."""
    clamp_output: bool = False
    """Clamp the fast layer's attention output to [-10, 10] (Metta's fast-mode guard)."""
    agalite_gate_bias: float = 0.0
    """Initial bias b of the beta and gamma blocks (3 and 4 of the [H, 5, D] layout) of every AGaLiTe layer's k, q,
    v, beta, gamma projection (kqvbg; fast mode: the first 5 H D outputs of kqvbgp), every head, any init scheme;
    the other biases keep their init (0). Retention per step at init: values 1 - sigmoid(b), keys
    1 - sigmoid(b) sigmoid(p3) (b=0: 0.5 / 0.75; b=-4: 0.98 / 0.99). Metta export refuses b != 0 (Cortex's
    AGaLiTe projections have no bias)."""
    lstm_hidden: int = 0
    """Recurrent width: the LSTM of lstm / agalite_hybrid / slot and the GRU of gru; 0 means d_model."""
    lstm_forget_bias: float = 1.0
    """Initial forget block of bias_ih_l0 in every LSTM layer (lstm, agalite_hybrid, slot; bias_hh stays 0), any
    init scheme: c keeps sigmoid(b) per step at init (b=1: 0.73, 4% after 10 steps; lstm fails T-Maze corridor
    10 on 3/3 seeds at 1 and solves 3/3 at 3, sigmoid(3) = 0.95: experiments/suite_studies.py)."""
    gru_update_bias: float = 0.0
    """Initial update (z) block of bias_ih_l0 in every GRU layer (gru; other blocks and bias_hh stay 0), any init
    scheme: h' = (1 - z) n + z h keeps sigmoid(b) of h per step at init (b=0: 0.5); the LSTM's T-Maze runs
    above are why a positive b can help."""
    agalite_kernel: str = "relu"
    """Feature-map activation f in psi(k) = vec(f(k) x f(p1)), phi(q) = vec(f(q) x f(p2)). relu: the paper's
    (official code, Cortex); eluplus1: f(x) = elu(x) + 1 > 0 (Metta's pre-Cortex AGaLiTe default), so no query
    or key is ever all zero (a relu query is 0 on an all-zero observation: experiments/SUITE.md). Metta export
    refuses eluplus1 (Cortex's AGaLiTe has relu only)."""
    agalite_tick: str = "jax_tx"
    """Oscillator step n_t. jax_tx: 1 at an episode's first step (reset restarts it). official: 1 at the first
    step of fresh memory, never reset by `reset`. cortex: 2 at the first step of fresh memory (tick starts at
    1, n = tick + t for t = 1..T), never reset by `reset`. For num_oscillators=2 all three give equal outputs."""

    # --- sliding-window transformer
    max_cache_size: int = 80
    """Key/value cache length in tokens (4 tokens per step)."""
    pooling: str = "mean"
    cache_across_resets: bool = False
    """Metta's behaviour: the cache stays visible across episode boundaries."""
    sliding_positions: str = "sinusoid"
    """sinusoid: each token plus PE(p_t), p_t = steps since episode start (Metta's). none: no position term, so
    attention is by content alone (an experiment on T-Maze, experiments/SUITE.md); Metta export refuses it."""

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

    @property
    def token_width(self) -> int:
        """Features per token after the tokenizer: attr_embed_dim + 4 K + 1."""
        return self.token_attr_embed_dim + 4 * self.token_fourier_freqs + 1

    @property
    def latent_dim(self) -> int:
        return self.token_latent_dim or self.d_model

    def replace(self, **changes: Any) -> PolicyConfig:
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        if isinstance(self.token_value_norms, list):  # JSON gives lists; keep the config hashable
            object.__setattr__(self, "token_value_norms", tuple(self.token_value_norms))
        for name in GATE_BIAS_FIELDS:  # JSON / recipes may give an int such as 3
            v = getattr(self, name)
            if isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, name, float(v))
        validate(self)

    # --- JSON round trip
    def to_dict(self) -> dict[str, Any]:
        """JSON-native values (tuples as lists), so to_dict() equals json.loads(to_json())."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
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
        if version < 2 and d.get("variant") in AGALITE_VARIANTS:
            d["sublayer_relu"] = True  # version 1 agalite applied the sublayer ReLUs whatever the field said
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
    for name in GATE_BIAS_FIELDS:
        v = getattr(cfg, name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        _require(ok, name, v, "must be a finite number")
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
    _require(cfg.agalite_eps > 0, "agalite_eps", cfg.agalite_eps, "must be > 0 (it keeps the normaliser from 0/0)")
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
    for name, allowed in (
        ("encoder", ENCODERS),
        ("ff_activation", FF_ACTIVATIONS),
        ("critic_activation", CRITIC_ACTIVATIONS),
        ("agalite_tick", AGALITE_TICKS),
        ("agalite_kernel", AGALITE_KERNELS),
        ("memory_init", MEMORY_INITS),
        ("memory_holds", MEMORY_HOLDS),
        ("init", INITS),
        ("agalite_gating", AGALITE_GATINGS),
        ("sliding_positions", SLIDING_POSITIONS),
    ):
        _require(getattr(cfg, name) in allowed, name, getattr(cfg, name), f"must be one of {allowed}")
    for name in ("attn_out_bias", "final_norm", "norm_bias", "agalite_fast_norm", "agalite_ff"):
        _require(isinstance(getattr(cfg, name), bool), name, getattr(cfg, name), "must be True or False")
    standard_agalite = cfg.variant in AGALITE_VARIANTS and cfg.agalite_mode == "standard"
    for name, paper in (("agalite_gating", "gru"), ("agalite_ff", True)):  # the block ablations
        v = getattr(cfg, name)
        _require(v == paper or standard_agalite, name, v, "needs a standard-mode AGaLiTe variant (fast mode has none)")
    _require(not cfg.agalite_fast_norm or cfg.agalite_mode == "fast", "agalite_fast_norm", True, "needs fast mode")
    v = cfg.sliding_positions
    _require(v == "sinusoid" or cfg.variant == "sliding", "sliding_positions", v, "needs variant sliding")
    v = cfg.actor_layers
    _require(isinstance(v, int) and 1 <= v <= 8, "actor_layers", v, "must be 1..8")
    if cfg.encoder == "tokens":
        _validate_tokens(cfg)
    for name in ("base_dim", "slot_dim", "slot_grid_rows", "slot_grid_cols"):
        v = getattr(cfg, name)
        _require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, name, v, "must be an int >= 0")
    _require(isinstance(cfg.slot_remat, bool), "slot_remat", cfg.slot_remat, "must be true or false")
    if cfg.variant == "slot":
        _validate_slot(cfg)


def _validate_tokens(cfg: PolicyConfig) -> None:
    ints = ("token_attr_embed_dim", "token_num_latents", "token_num_heads", "token_num_layers", "token_mlp_ratio")
    for name in (*ints, "token_fourier_freqs"):
        v = getattr(cfg, name)
        _require(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, v, "must be an int >= 1")
    for name, lo, hi, why in (
        ("token_attr_vocab", 1, 256, "attribute ids are one byte"),
        ("token_grid_size", 2, 16, "x and y are 4-bit nibbles"),
    ):
        v = getattr(cfg, name)
        _require(isinstance(v, int) and lo <= v <= hi, name, v, f"must be in {lo}..{hi} ({why})")
    v = cfg.token_latent_dim
    _require(isinstance(v, int) and v >= 0, "token_latent_dim", v, "must be >= 0 (0 = d_model)")
    _require(
        cfg.latent_dim % cfg.token_num_heads == 0,
        "token_num_heads",
        cfg.token_num_heads,
        f"must divide the Perceiver width {cfg.latent_dim} (token_latent_dim or d_model)",
    )
    norms = cfg.token_value_norms
    _require(
        len(norms) <= 256 and all(isinstance(v, (int, float)) and v > 0 for v in norms),
        "token_value_norms",
        norms,
        "must be at most 256 positive numbers (one per attribute id)",
    )
    _require(cfg.variant != "slot", "encoder", cfg.encoder, "the slot variant reads flat observations; use 'mlp'")


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
