"""GTrXL (twin of jax_tx/gtrxl.py).

y = g1(x, ReLU(Dropout(RelAttn(LN1([mem | x])))))
h = g2(y, ReLU(FF(LN2(y))))
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.models.trxl import XLCore, initial_memory
from torch_ref.nn.common import layer_norm
from torch_ref.nn.feedforward import FeedForward
from torch_ref.nn.gating import combine, make_gate
from torch_ref.nn.relative import RelMultiHeadAttention

__all__ = ["GTrXLLayer", "initial_memory", "make_core"]


class GTrXLLayer(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.norm1 = layer_norm(cfg)
        self.attn = RelMultiHeadAttention(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm2 = layer_norm(cfg)
        self.ff = FeedForward(cfg)
        if cfg.gating != "none":
            self.gate1, self.gate2 = make_gate(cfg), make_gate(cfg)

    def forward(self, x, mem, allowed):
        keys_in = torch.cat([mem.to(x.dtype), x], dim=1)
        a = self.drop(self.attn(self.norm1(keys_in), allowed))
        f_in = combine(self, self.cfg.gating, "gate1", x, self._act(a))
        f = self.ff(self.norm2(f_in))
        return combine(self, self.cfg.gating, "gate2", f_in, self._act(f))

    def _act(self, y):
        return torch.relu(y) if self.cfg.sublayer_relu else y


def make_core(cfg: PolicyConfig) -> nn.Module:
    return XLCore(cfg, GTrXLLayer)
