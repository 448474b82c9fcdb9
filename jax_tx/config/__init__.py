"""Configuration, importable without jax or torch.

    from jax_tx import config
    cfg = config.preset("trxl", obs_dim=12, num_actions=5, d_model=64)   # PolicyConfig
    tcfg = config.TrainConfig(policy=cfg, ppo=config.PPOConfig())

- `jax_tx.config.policy`: PolicyConfig (every model field), validation, ConfigError;
- `jax_tx.config.presets`: the per-variant defaults and `preset`;
- `jax_tx.config.train`: PPOConfig and TrainConfig;
- `jax_tx.config.init_scheme`: the init="orthogonal" scheme's per-layer gains.
"""

from jax_tx.config.init_scheme import INITS, orthogonal_gain
from jax_tx.config.policy import (
    AGALITE_MODES,
    AGALITE_TICKS,
    AGALITE_VARIANTS,
    CRITIC_ACTIVATIONS,
    DTYPES,
    ENCODERS,
    FF_ACTIVATIONS,
    GATINGS,
    MEMORY_HOLDS,
    MEMORY_INITS,
    POOLINGS,
    SCHEMA_VERSION,
    SLIDING_POSITIONS,
    SLOT_INACTIVE_LOGIT,
    TOKEN_PAD,
    VARIANTS,
    XL_VARIANTS,
    ConfigError,
    PolicyConfig,
    slot_count,
    validate,
)
from jax_tx.config.presets import METTA_PRESETS, METTA_SMALL, PRESETS, preset
from jax_tx.config.train import LR_SCHEDULES, OPTIMIZERS, PPOConfig, TrainConfig

__all__ = [
    "AGALITE_MODES",
    "AGALITE_TICKS",
    "AGALITE_VARIANTS",
    "CRITIC_ACTIVATIONS",
    "DTYPES",
    "ENCODERS",
    "FF_ACTIVATIONS",
    "GATINGS",
    "INITS",
    "LR_SCHEDULES",
    "MEMORY_HOLDS",
    "MEMORY_INITS",
    "METTA_PRESETS",
    "METTA_SMALL",
    "OPTIMIZERS",
    "POOLINGS",
    "PRESETS",
    "SCHEMA_VERSION",
    "SLIDING_POSITIONS",
    "SLOT_INACTIVE_LOGIT",
    "TOKEN_PAD",
    "VARIANTS",
    "XL_VARIANTS",
    "ConfigError",
    "PPOConfig",
    "PolicyConfig",
    "TrainConfig",
    "orthogonal_gain",
    "preset",
    "slot_count",
    "validate",
]
