"""The flat-vector encoder: x = ReLU(W_enc obs + b), obs float [B, T, obs_dim] -> [B, T, D].

Its parameters sit at `encoder/kernel`, `encoder/bias` (torch `encoder.weight`, `encoder.bias`), as before
encoders had their own package, so existing checkpoints and conversions keep working.
"""

from __future__ import annotations

import math

import flax.linen as nn

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import dense


def encode(cfg: PolicyConfig, obs, name: str):
    """ReLU(Dense(d_model)(obs)), orthogonal(sqrt 2) kernel, created in the caller's scope under `name`."""
    return nn.relu(dense(cfg, cfg.d_model, name, kernel_init=nn.initializers.orthogonal(scale=math.sqrt(2)))(obs))
