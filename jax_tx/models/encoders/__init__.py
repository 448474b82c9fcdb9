"""Observation encoders, chosen by `cfg.encoder` (twin: torch_ref/models/encoders).

    x = encode(cfg, obs, name)        inside a compact module; [B, T, D]

mlp.py     encoder="mlp":    ReLU(W obs + b) on flat float obs [B, T, obs_dim] (params at `encoder/kernel`)
tokens.py  encoder="tokens": Metta's token observations uint8 [B, T, obs_dim, 3] -> shim -> Fourier tokenizer
                             -> Perceiver latents -> mean pool (params under `encoder/...`)
"""

from __future__ import annotations

from jax_tx.config import PolicyConfig
from jax_tx.models.encoders import mlp, tokens


def encode(cfg: PolicyConfig, obs, name: str = "encoder"):
    """The latent x [B, T, d_model] of obs, through the encoder cfg.encoder names (created in the caller's scope)."""
    if cfg.encoder == "tokens":
        return tokens.TokenEncoder(cfg, name=name)(obs)
    return mlp.encode(cfg, obs, name)


def example_obs(cfg: PolicyConfig, batch: int, steps: int, dtype):
    """Zero observations of the encoder's input shape: flat [B, T, obs_dim] or tokens uint8 [B, T, obs_dim, 3]."""
    import jax.numpy as jnp

    if cfg.encoder == "tokens":
        return jnp.zeros((batch, steps, cfg.obs_dim, 3), jnp.uint8)
    return jnp.zeros((batch, steps, cfg.obs_dim), dtype)
