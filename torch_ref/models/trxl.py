"""Transformer-XL memory core (twin of jax_tx/trxl.py).

Pre-norm:  y = x + Dropout(RelAttn(LN1([mem | x]))),   h = y + FF(LN2(y))
Post-norm: y = LN1(x + Dropout(RelAttn([mem | x]))),   h = LN2(y + FF(y))
memory = {"hidden": [B, L, M, D] layer inputs (outputs with memory_holds="outputs"), "valid": [B, M] bool}
memory_init="zeros": fresh memory is zero rows marked valid (attended until the first reset)
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.nn.attention import memory_attention_mask, roll_memory
from torch_ref.nn.common import layer_norm, torch_dtype
from torch_ref.nn.feedforward import FeedForward
from torch_ref.nn.relative import RelMultiHeadAttention


class TrXLLayer(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.attn = RelMultiHeadAttention(cfg)
        self.ff = FeedForward(cfg)
        self.norm1, self.norm2 = layer_norm(cfg), layer_norm(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mem, allowed):
        keys_in = torch.cat([mem.to(x.dtype), x], dim=1)
        if self.cfg.pre_norm:
            y = x + self.drop(self.attn(self.norm1(keys_in), allowed))
            return y + self.ff(self.norm2(y))
        y = self.norm1(x + self.drop(self.attn(keys_in, allowed)))
        return self.norm2(y + self.ff(y))


class XLCore(nn.Module):
    """A stack of layers over [memory | x] with episode-masked relative attention."""

    def __init__(self, cfg: PolicyConfig, layer_cls: type = TrXLLayer):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList([layer_cls(cfg) for _ in range(cfg.num_layers)])

    def forward(self, x, reset, memory, aux):
        cfg = self.cfg
        hidden, valid = memory["hidden"], memory["valid"]
        window = cfg.memory_len if cfg.same_length else None
        allowed = memory_attention_mask(valid, reset, window)
        next_valid = roll_memory(valid, reset)
        layer_inputs, layer_outputs = [], []
        h = x
        for i, layer in enumerate(self.layers):
            layer_inputs.append(h)
            h = layer(h, hidden[:, i], allowed)
            layer_outputs.append(h)
        kept = layer_outputs if cfg.memory_holds == "outputs" else layer_inputs
        return h, {"hidden": next_hidden(hidden, kept, next_valid), "valid": next_valid}


def next_hidden(hidden, layer_inputs, next_valid):
    """Last M rows of [mem_l | input_l] per layer, zeroed where invalid, detached."""
    m = hidden.shape[2]
    rows = [torch.cat([hidden[:, i], h.to(hidden.dtype)], dim=1)[:, -m:] for i, h in enumerate(layer_inputs)]
    stacked = torch.stack(rows, dim=1)
    return torch.where(next_valid[:, None, :, None], stacked, torch.zeros((), dtype=hidden.dtype)).detach()


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    return {
        "hidden": torch.zeros(batch, cfg.num_layers, cfg.memory_len, cfg.d_model, dtype=torch_dtype(cfg)),
        "valid": torch.full((batch, cfg.memory_len), cfg.memory_init == "zeros", dtype=torch.bool),
    }


def make_core(cfg: PolicyConfig) -> nn.Module:
    return XLCore(cfg, TrXLLayer)
