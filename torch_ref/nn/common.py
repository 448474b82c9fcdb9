"""Dtype policy and LayerNorm factory of the torch twin (see jax_tx/nn/common.py).

The twin computes in float32, or float64 for float64 configs; a bfloat16 config runs
its torch twin in float32 (the twin is the numeric reference, not a fast path).
cfg.init="orthogonal" re-initialises every Linear after construction (`apply_init`), with the
gains of jax_tx/config/init_scheme.py and torch's own random numbers, then restores the biases a config field
sets (`init_gate_biases`).
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig, orthogonal_gain


def torch_dtype(cfg: PolicyConfig) -> torch.dtype:
    return torch.float64 if cfg.dtype == "float64" else torch.float32


def layer_norm(cfg: PolicyConfig, width: int | None = None) -> nn.LayerNorm:
    """LayerNorm of the core: eps cfg.layer_norm_eps, a bias unless norm_bias=False (Cortex)."""
    return nn.LayerNorm(width or cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.norm_bias)


@torch.no_grad()
def apply_init(cfg: PolicyConfig, model: nn.Module) -> nn.Module:
    """cfg.init="orthogonal": every nn.Linear `name` of `model` gets W orthogonal with gain
    g = orthogonal_gain(last part of name) (W W^T = g^2 I on its orthogonal side) and bias 0, as the flax
    twin's `dense` does; then every module with an `init_gate_biases()` method calls it (the AGaLiTe beta/gamma
    biases, `agalite_gate_bias`, set under either scheme). init="default" leaves the model untouched.
    Returns `model`."""
    if cfg.init != "orthogonal":
        return model
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            nn.init.orthogonal_(module.weight, orthogonal_gain(name.rsplit(".", 1)[-1]))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for module in model.modules():
        if hasattr(module, "init_gate_biases"):
            module.init_gate_biases()
    return model
