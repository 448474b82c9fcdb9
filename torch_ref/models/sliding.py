"""Sliding-window transformer with an episode-masked KV cache (twin of jax_tx/sliding.py).

tok(t) = [c, x_t, W_r r_{t-1} + b_r + W_d reset_t + b_d, W_a onehot(a_{t-1}) + b_a] + PE(p_t)   (S = 4)
(the + PE(p_t) term only with sliding_positions "sinusoid", the default)
h = h + Dropout(W_o softmax(q [cache | k]^T / sqrt(H), allowed) [cache | v] + b_o),  q,k,v = W LN1(h) + b
h = h + Dropout(W_2 GELU(W_1 LN2(h) + b_1) + b_2);   y_t = pool(LN_final(h)) over the S tokens of step t
memory = {"k", "v": [B, L, C, N, H], "valid": [B, C] bool, "position": [B] int32}
"""

from __future__ import annotations

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from torch_ref.models.aux_tokens import action_one_hot, check_action_range, history_inputs, history_linear
from torch_ref.nn.attention import masked_softmax, memory_key_ids, roll_memory
from torch_ref.nn.common import layer_norm, torch_dtype

TOKENS_PER_STEP = 4


def _linear(in_features: int, out_features: int) -> nn.Linear:
    """Linear with xavier-uniform weight and zero bias (as the flax twin)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def step_positions(reset: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """p[b, t] = t - (last s <= t with reset[b, s]) if there is one, else start[b] + t."""
    steps = torch.arange(reset.shape[1], dtype=torch.int32)
    last = torch.cummax(torch.where(reset, steps, -1), dim=1).values
    return torch.where(last >= 0, steps - last, start[:, None].to(torch.int32) + steps).to(torch.int32)


def sinusoid_positions(pos: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """[..., dim]: PE[2i] = sin(p w_i), PE[2i+1] = cos(p w_i), w_i = 1 / 10000^(2i/dim)."""
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=dtype) / dim))
    angles = pos.to(dtype)[..., None] * inv_freq
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(*pos.shape, -1)[..., :dim]


def token_resets(reset: torch.Tensor) -> torch.Tensor:
    """[B, T] -> [B, T*S]: a step's reset marks its first token only."""
    b, t = reset.shape
    out = torch.zeros(b, t, TOKENS_PER_STEP, dtype=torch.bool)
    out[:, :, 0] = reset
    return out.reshape(b, t * TOKENS_PER_STEP)


def window_mask(valid: torch.Tensor, reset: torch.Tensor, across_resets: bool) -> torch.Tensor:
    """allowed[b, q, k]: S s(q) <= k < C + S (s(q) + 1), k filled and (unless across_resets) same episode."""
    num_cache, steps = valid.shape[1], reset.shape[1]
    q_step = torch.arange(steps * TOKENS_PER_STEP) // TOKENS_PER_STEP
    k_idx = torch.arange(num_cache + steps * TOKENS_PER_STEP)
    lo, hi = TOKENS_PER_STEP * q_step, num_cache + TOKENS_PER_STEP * (q_step + 1)
    window = (k_idx[None, :] >= lo[:, None]) & (k_idx[None, :] < hi[:, None])
    key_ids, query_ids = memory_key_ids(valid, token_resets(reset))
    same = (key_ids >= 0)[:, None, :] if across_resets else query_ids[:, :, None] == key_ids[:, None, :]
    return window[None] & same


def next_valid(valid: torch.Tensor, reset: torch.Tensor, across_resets: bool) -> torch.Tensor:
    if across_resets:
        new = torch.ones(reset.shape[0], reset.shape[1] * TOKENS_PER_STEP, dtype=torch.bool)
        return torch.cat([valid, new], dim=1)[:, -valid.shape[1] :]
    return roll_memory(valid, token_resets(reset))


class CachedAttention(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.num_heads * cfg.head_dim
        self.q_proj = _linear(cfg.d_model, width)
        self.k_proj = _linear(cfg.d_model, width)
        self.v_proj = _linear(cfg.d_model, width)
        self.out_proj = _linear(width, cfg.d_model)
        self.attn_drop = nn.Dropout(cfg.attn_dropout)

    def forward(self, x, cache_k, cache_v, allowed):
        """x [B, Q, D], cache_k/v [B, C, N, H], allowed [B, Q, C+Q] -> (out [B, Q, D], k, v [B, Q, N, H])."""
        n, hd = self.cfg.num_heads, self.cfg.head_dim
        b, q_len, _ = x.shape
        q, k, v = (proj(x).view(b, q_len, n, hd) for proj in (self.q_proj, self.k_proj, self.v_proj))
        keys = torch.cat([cache_k.to(k.dtype), k], dim=1)
        values = torch.cat([cache_v.to(v.dtype), v], dim=1)
        scores = torch.einsum("bqnh,bknh->bnqk", q, keys) * (hd**-0.5)
        probs = self.attn_drop(masked_softmax(scores, allowed[:, None]))
        out = torch.einsum("bnqk,bknh->bqnh", probs, values).reshape(b, q_len, n * hd)
        return self.out_proj(out), k, v


class GeluFeedForward(nn.Module):
    """FF(x) = W_2 GELU(W_1 x + b_1) + b_2 with the exact (erf) GELU."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.fc1 = _linear(cfg.d_model, cfg.d_ff)
        self.fc2 = _linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class SlidingBlock(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.norm1, self.norm2 = layer_norm(cfg), layer_norm(cfg)
        self.attn = CachedAttention(cfg)
        self.ff = GeluFeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h, cache_k, cache_v, allowed):
        a, k, v = self.attn(self.norm1(h), cache_k, cache_v, allowed)
        h = h + self.drop(a)
        return h + self.drop(self.ff(self.norm2(h))), k, v


class SlidingCore(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.cls_token = nn.Parameter(torch.randn(d))
        self.reward_proj = history_linear(1, d)
        self.reset_proj = history_linear(1, d)
        self.action_proj = history_linear(cfg.num_actions, d)
        self.layers = nn.ModuleList([SlidingBlock(cfg) for _ in range(cfg.num_layers)])
        self.final_norm = layer_norm(cfg)
        if cfg.pooling == "none":
            self.pool_proj = _linear(TOKENS_PER_STEP * d, d)

    def forward(self, x, reset, memory, aux):
        """x [B, T, D], reset [B, T] -> (y [B, T, D], next memory)."""
        cfg = self.cfg
        b, t, d = x.shape
        dt = x.dtype
        if aux.get("prev_action") is not None:
            check_action_range(torch.as_tensor(aux["prev_action"]), cfg.num_actions)
        rst, prev_action, prev_reward = history_inputs(reset, aux.get("prev_action"), aux.get("prev_reward"), dt)
        reward_tok = self.reward_proj(prev_reward[..., None]) + self.reset_proj(rst[..., None])
        action_tok = self.action_proj(action_one_hot(prev_action, cfg.num_actions, dt))
        tokens = torch.stack([self.cls_token.to(dt).expand(b, t, d), x, reward_tok, action_tok], dim=2)
        pos = step_positions(reset, memory["position"])
        if cfg.sliding_positions == "sinusoid":
            tokens = tokens + sinusoid_positions(pos, d, torch_dtype(cfg)).to(dt)[:, :, None, :]
        h = tokens.reshape(b, t * TOKENS_PER_STEP, d)

        valid = memory["valid"]
        allowed = window_mask(valid, reset, cfg.cache_across_resets)
        keep = next_valid(valid, reset, cfg.cache_across_resets)
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            cache_k, cache_v = memory["k"][:, i], memory["v"][:, i]
            h, k, v = layer(h, cache_k, cache_v, allowed)
            new_k.append(roll_cache(cache_k, k, keep))
            new_v.append(roll_cache(cache_v, v, keep))
        h = self.final_norm(h).reshape(b, t, TOKENS_PER_STEP, d)
        next_memory = {
            "k": torch.stack(new_k, dim=1),
            "v": torch.stack(new_v, dim=1),
            "valid": keep,
            "position": pos[:, -1] + 1,
        }
        return self.pool(h), next_memory

    def pool(self, h):
        """[B, T, S, D] -> [B, T, D]: mean over S | token 0 (cls) | pool_proj(concat of the S tokens) (none)."""
        if self.cfg.pooling == "mean":
            return h.mean(dim=2)
        if self.cfg.pooling == "cls":
            return h[:, :, 0]
        b, t, s, d = h.shape
        return self.pool_proj(h.reshape(b, t, s * d))


def roll_cache(cache, new, keep):
    """Last C rows of [cache | new], zeroed where not kept, detached."""
    rows = torch.cat([cache, new.to(cache.dtype)], dim=1)[:, -cache.shape[1] :]
    return torch.where(keep[:, :, None, None], rows, torch.zeros((), dtype=cache.dtype)).detach()


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    shape = (batch, cfg.num_layers, cfg.max_cache_size, cfg.num_heads, cfg.head_dim)
    return {
        "k": torch.zeros(shape, dtype=torch_dtype(cfg)),
        "v": torch.zeros(shape, dtype=torch_dtype(cfg)),
        "valid": torch.full((batch, cfg.max_cache_size), cfg.memory_init == "zeros", dtype=torch.bool),
        "position": torch.zeros(batch, dtype=torch.int32),
    }


def make_core(cfg: PolicyConfig) -> nn.Module:
    return SlidingCore(cfg)
