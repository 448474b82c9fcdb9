"""Metta's token-observation encoder (twin of jax_tx/models/encoders/tokens.py; equations there).

valid = byte0 != 0xFF;  f = [E(a) | cos(xh w) | sin(xh w) | cos(yh w) | sin(yh w) | u / norm[a]], 0 for padding
k, v = W_k LN(f), W_v LN(f);  per layer: z += W_o softmax(W_q LN(z) k^T / sqrt(Q), masked) v + b_o;
z += W_2 GELU(W_1 LN(z) + b_1) + b_2;  x = mean_L LN(z)  (then W_in x + b_in when latent_dim != d_model)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from jax_tx.config import TOKEN_PAD, PolicyConfig

LN_EPS = 1e-5


def value_norm_table(cfg: PolicyConfig) -> np.ndarray:
    table = np.ones(256, np.float64)
    table[: len(cfg.token_value_norms)] = cfg.token_value_norms
    return table


def token_valid(obs: torch.Tensor) -> torch.Tensor:
    """[B, T, N] bool: the token is not padding (coordinate byte != 0xFF)."""
    return obs[..., 0] != TOKEN_PAD


def token_features(cfg: PolicyConfig, obs: torch.Tensor, attr_embeds: nn.Embedding, dtype: torch.dtype):
    """obs uint8 [B, T, N, 3] -> (features [B, T, N, F], valid [B, T, N])."""
    valid = token_valid(obs)
    coord, attr = obs[..., 0].long(), obs[..., 1].long()
    x, y = (coord >> 4).to(dtype), (coord & 15).to(dtype)
    value = obs[..., 2].to(dtype) / torch.as_tensor(value_norm_table(cfg), dtype=dtype)[attr]
    known = valid & (attr < cfg.token_attr_vocab)
    emb = attr_embeds(torch.where(known, attr, 0)) * (known & (attr != TOKEN_PAD))[..., None].to(dtype)
    w = 2.0 ** torch.arange(cfg.token_fourier_freqs, dtype=dtype)
    span = cfg.token_grid_size - 1
    ax = (x / span * 2 - 1)[..., None] * w
    ay = (y / span * 2 - 1)[..., None] * w
    feats = torch.cat([emb, torch.cos(ax), torch.sin(ax), torch.cos(ay), torch.sin(ay), value[..., None]], dim=-1)
    return torch.where(valid[..., None], feats, torch.zeros((), dtype=dtype)), valid


def token_attention(scores, v, valid) -> torch.Tensor:
    """softmax_n(scores) v, padded tokens masked, sums over n in index order (exact zeros for a masked token);
    scores [B, T, S, L, N], v [B, T, N, S, Q], valid [B, T, N] -> [B, T, L, S, Q]. No valid token: uniform."""
    allowed = valid | ~valid.any(dim=-1, keepdim=True)
    s = scores.masked_fill(~allowed[:, :, None, None, :], float("-inf"))
    e = torch.exp(s - s.max(dim=-1, keepdim=True).values.detach())
    num = e[..., 0, None] * v[:, :, 0, :, None, :]
    den = e[..., 0]
    for n in range(1, e.shape[-1]):
        num = num + e[..., n, None] * v[:, :, n, :, None, :]
        den = den + e[..., n]
    return (num / den[..., None]).transpose(2, 3)


class PerceiverLayer(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        p = cfg.latent_dim
        self.heads = cfg.token_num_heads
        self.latent_norm = nn.LayerNorm(p, eps=LN_EPS)
        self.q_proj = nn.Linear(p, p, bias=False)
        self.attn_out_proj = nn.Linear(p, p)
        self.mlp_norm = nn.LayerNorm(p, eps=LN_EPS)
        self.mlp = nn.Sequential(
            nn.Linear(p, cfg.token_mlp_ratio * p), nn.GELU(), nn.Linear(cfg.token_mlp_ratio * p, p)
        )

    def forward(self, z, k, v, valid):
        """z [B, T, L, P], k/v [B, T, N, S, Q], valid [B, T, N] -> z."""
        p, s = z.shape[-1], self.heads
        q = self.q_proj(self.latent_norm(z)).view(*z.shape[:3], s, p // s)
        scores = torch.einsum("btlsq,btnsq->btsln", q, k) * ((p // s) ** -0.5)
        out = token_attention(scores, v, valid).reshape(z.shape)
        z = z + self.attn_out_proj(out)
        return z + self.mlp(self.mlp_norm(z))


class TokenEncoder(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        p = cfg.latent_dim
        self.attr_embeds = nn.Embedding(cfg.token_attr_vocab, cfg.token_attr_embed_dim)
        nn.init.trunc_normal_(self.attr_embeds.weight, std=0.02)
        if cfg.token_attr_vocab > TOKEN_PAD:
            with torch.no_grad():
                self.attr_embeds.weight[TOKEN_PAD].zero_()
        self.token_norm = nn.LayerNorm(cfg.token_width, eps=LN_EPS)
        self.k_proj = nn.Linear(cfg.token_width, p, bias=False)
        self.v_proj = nn.Linear(cfg.token_width, p, bias=False)
        self.latents = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, cfg.token_num_latents, p), std=0.02))
        self.layers = nn.ModuleList([PerceiverLayer(cfg) for _ in range(cfg.token_num_layers)])
        self.final_norm = nn.LayerNorm(p, eps=LN_EPS)
        if p != cfg.d_model:
            self.input_proj = nn.Linear(p, cfg.d_model)
            nn.init.orthogonal_(self.input_proj.weight, 1.0)
            nn.init.zeros_(self.input_proj.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs uint8 [B, T, N, 3] -> x [B, T, d_model]."""
        cfg = self.cfg
        dtype = self.latents.dtype
        feats, valid = token_features(cfg, obs, self.attr_embeds, dtype)
        t = self.token_norm(feats)
        b, steps, n = feats.shape[:3]
        s, p = cfg.token_num_heads, cfg.latent_dim
        k = self.k_proj(t).view(b, steps, n, s, p // s)
        v = self.v_proj(t).view(b, steps, n, s, p // s)
        z = self.latents[None].expand(b, steps, cfg.token_num_latents, p)
        for layer in self.layers:
            z = layer(z, k, v, valid)
        x = self.final_norm(z).mean(dim=2)
        return self.input_proj(x) if p != cfg.d_model else x
