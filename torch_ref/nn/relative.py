"""Transformer-XL relative multi-head attention (twin of jax_tx/nn/relative.py).

AC  = (q + u) . k_j,   BD = rel_shift((q + v) . R),   R = W_r [sin | cos](d f)
out = W_o softmax((AC + BD) / sqrt(H_d), masked) V
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.nn.attention import masked_softmax


def sinusoid_embedding(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """[len(pos), dim] = cat[sin(pos f), cos(pos f)], f_i = 1 / 10000^(2i/dim)."""
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=pos.dtype) / dim))
    angles = pos[:, None] * inv_freq[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def relative_distances(num_keys: int, clamp_len: int, dtype: torch.dtype) -> torch.Tensor:
    pos = torch.arange(num_keys - 1, -1, -1, dtype=dtype)
    return pos.clamp(max=clamp_len) if clamp_len > 0 else pos


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """out[..., i, j] = x[..., i, j + T - 1 - i] for x [B, N, T, K] (pad, view, drop row)."""
    b, n, t, k = x.shape
    padded = nn.functional.pad(x, (1, 0))
    return padded.view(b, n, k + 1, t)[:, :, 1:, :].reshape(b, n, t, k)


class RelMultiHeadAttention(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        n, h = cfg.num_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * n * h, bias=False)
        self.r_net = nn.Linear(cfg.d_model, n * h, bias=False)
        self.o_net = nn.Linear(n * h, cfg.d_model, bias=cfg.attn_out_bias)
        self.r_w_bias = nn.Parameter(torch.randn(n, h) * 0.02)
        self.r_r_bias = nn.Parameter(torch.randn(n, h) * 0.02)
        self.attn_drop = nn.Dropout(cfg.attn_dropout)

    def forward(self, keys_in: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """keys_in [B, K, D] (queries = last T rows), allowed [B, T, K] -> [B, T, D]."""
        cfg = self.cfg
        n, h = cfg.num_heads, cfg.head_dim
        b, k_len, _ = keys_in.shape
        t = allowed.shape[1]
        q, k, v = self.qkv(keys_in).view(b, k_len, 3, n, h).unbind(dim=2)
        q = q[:, -t:]
        pos = sinusoid_embedding(relative_distances(k_len, cfg.clamp_len, keys_in.dtype), cfg.d_model)
        r = self.r_net(pos).view(k_len, n, h)
        ac = torch.einsum("btnh,bknh->bntk", q + self.r_w_bias, k)
        bd = rel_shift(torch.einsum("btnh,knh->bntk", q + self.r_r_bias, r))
        probs = self.attn_drop(masked_softmax((ac + bd) * (h**-0.5), allowed[:, None]))
        out = torch.einsum("bntk,bknh->btnh", probs, v).reshape(b, t, n * h)
        return self.o_net(out)
