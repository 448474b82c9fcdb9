"""Observation encoders, chosen by `cfg.encoder` (twin of jax_tx/models/encoders).

mlp.py     encoder="mlp":    ReLU(W obs + b) (state dict keys `encoder.weight`, `encoder.bias`)
tokens.py  encoder="tokens": Metta's token observations -> shim -> Fourier tokenizer -> Perceiver latents
"""

from __future__ import annotations

from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.models.encoders import mlp, tokens


def make_encoder(cfg: PolicyConfig) -> nn.Module:
    """obs -> x [B, T, d_model] for cfg.encoder."""
    if cfg.encoder == "tokens":
        return tokens.TokenEncoder(cfg)
    return mlp.MLPEncoder(cfg)
