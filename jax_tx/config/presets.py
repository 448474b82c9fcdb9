"""Per-variant defaults: `preset(variant, obs_dim, num_actions, size, **overrides)` (no jax, no torch).

Every default of a variant lives here; PolicyConfig's own field defaults only fill what a
preset leaves unset.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from jax_tx.config.policy import VARIANTS, ConfigError, PolicyConfig

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
        sublayer_relu=True,
        layer_norm_eps=1e-6,  # the official code's flax LayerNorm default
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
        sublayer_relu=True,
    ),
    "sliding": dict(d_model=16, num_layers=2, num_heads=1, d_ff=64, max_cache_size=80, pooling="mean"),
    "lstm": dict(d_model=128, num_layers=1),  # lstm_hidden 0: the LSTM is d_model wide, no projection
    "gru": dict(d_model=128, num_layers=1),  # lstm_hidden 0: the GRU is d_model wide, no projection
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


# Metta's policies at the sizes Metta trains them (metta_interop.md sections 3-4, metta_torch_stack.md 1.1, 8),
# token encoder included: preset(name, obs_dim=<tokens per step>, num_actions=A). `variant` is the core.
_PERCEIVER_2 = dict(token_num_latents=12, token_num_heads=4, token_num_layers=2, token_attr_embed_dim=8)
_CORTEX = dict(
    d_model=64,
    num_layers=2,
    d_ff=96,
    sublayer_relu=False,
    ff_activation="silu",
    final_norm=True,
    norm_bias=False,
    critic_activation="relu",
    critic_hidden=512,
    actor_hidden=256,
    actor_layers=2,
    gating="gru",
    gate_bias=2.0,
    encoder="tokens",
    **_PERCEIVER_2,
)
_TRANSFORMER_POLICY = dict(
    encoder="tokens",
    token_num_latents=12,
    token_num_heads=4,
    token_num_layers=1,
    memory_holds="outputs",
    memory_init="zeros",
)
METTA_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "metta_cortex_xl": (
        "gtrxl",
        dict(_CORTEX, num_heads=4, memory_len=128, same_length=False, attn_out_bias=True, memory_init="zeros"),
    ),
    "metta_cortex_agalite": (
        "agalite",
        dict(_CORTEX, num_heads=8, d_head=8, eta=4, num_oscillators=2, agalite_tick="cortex", agalite_eps=1e-5),
    ),
    "metta_trxl": ("trxl", dict(METTA_SMALL["trxl"], **_TRANSFORMER_POLICY)),
    "metta_trxl_nvidia": ("trxl_nvidia", dict(METTA_SMALL["trxl_nvidia"], **_TRANSFORMER_POLICY)),
    "metta_sliding": (
        "sliding",
        dict(
            d_model=32,
            num_layers=2,
            num_heads=1,
            d_ff=64,
            max_cache_size=80,
            cache_across_resets=True,
            memory_init="zeros",
            critic_activation="relu",
            critic_hidden=1024,
            actor_hidden=64,  # Metta's Linear(D -> A) actor is exact as [I; -I] then [W, -W] (2 D hidden)
            encoder="tokens",
            token_latent_dim=64,
            **_PERCEIVER_2,
        ),
    ),
}


def preset(variant: str, obs_dim: int, num_actions: int, size: str = "default", **overrides: Any) -> PolicyConfig:
    """The resolved config of `variant`: preset defaults, then `overrides`.

    `variant` is a core (VARIANTS) or a Metta policy (METTA_PRESETS, e.g. "metta_cortex_xl"), whose config has
    the core as `variant`, encoder="tokens" and the Metta options set.

    Args:
      size: "default" (the seeds' module defaults) or "metta_small" (Metta recipe sizes).
    """
    if variant in METTA_PRESETS:
        if size != "default":
            raise ConfigError(f"size={size!r}: the Metta preset {variant!r} has one size; drop size")
        variant, metta = METTA_PRESETS[variant]
        base = {**PRESETS[variant], **metta}
    elif variant not in PRESETS:
        raise ConfigError(
            f"config field variant={variant!r}: must be one of {VARIANTS} or a Metta preset {tuple(METTA_PRESETS)}"
        )
    else:
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
