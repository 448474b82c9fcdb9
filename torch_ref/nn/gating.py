"""Residual combiners g(x, y) (twin of jax_tx/nn/gating.py).

GRU gate: r = s(W_r y + U_r x); z = s(W_z y + U_z x - b_g); h = tanh(W_g y + U_g(r*x));
          g = (1 - z) x + z h
Fused:    [a_r; a_z; a_h] = W [x ; y];  g = (1 - s(a_z - b_g)) x + s(a_z - b_g) tanh(a_h s(a_r))
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig


class GRUGate(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        d = cfg.d_model
        for name in ("w_r", "u_r", "w_z", "u_z", "w_g", "u_g"):
            setattr(self, name, nn.Linear(d, d, bias=False))
        self.bg = nn.Parameter(torch.full((d,), float(cfg.gate_bias)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r = torch.sigmoid(self.w_r(y) + self.u_r(x))
        z = torch.sigmoid(self.w_z(y) + self.u_z(x) - self.bg)
        h = torch.tanh(self.w_g(y) + self.u_g(r * x))
        return (1.0 - z) * x + z * h


class FusedGRUGate(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        d = cfg.d_model
        self.gate_proj = nn.Linear(2 * d, 3 * d, bias=False)
        self.bg = nn.Parameter(torch.full((d,), float(cfg.gate_bias)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a_r, a_z, a_h = self.gate_proj(torch.cat([x, y], dim=-1)).chunk(3, dim=-1)
        r = torch.sigmoid(a_r)
        z = torch.sigmoid(a_z - self.bg)
        return (1.0 - z) * x + z * torch.tanh(a_h * r)


def make_gate(cfg: PolicyConfig, gating: str | None = None) -> nn.Module:
    """The gate module for `gating` (default cfg.gating); 'none' has no module: see combine."""
    gating = cfg.gating if gating is None else gating
    if gating == "gru":
        return GRUGate(cfg)
    if gating == "fused_gru":
        return FusedGRUGate(cfg)
    raise ValueError(f"gating={gating!r} has no gate module")


def combine(layer: nn.Module, gating: str, name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """g(x, y) = x + y for gating 'none', else the gate layer.<name> (made by make_gate) applied to (x, y)."""
    return x + y if gating == "none" else getattr(layer, name)(x, y)
