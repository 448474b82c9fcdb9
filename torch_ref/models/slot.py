"""Slot transformer actor-critic (twin of jax_tx/slot.py).

obs = [base | slot_0 | ... | slot_{N-1}], feature 0 of a slot = active flag (> 0.5).
    g = ReLU(W_g base + b);  e_i = W_s slot_i + b + [R[i // cols] | C[i % cols]]
    x = [cls | e];  pre-norm layers: y = x + MHA(LN1(x), keys: cls + active);  x = y + FF_gelu(LN2(y))
    o = LN_f(x);  z = ReLU(W_f [g | o_cls] + b);  h, mem = LSTM(z, reset, mem)
    logits = W_pi h + b;  slot_i = (W_q h + b) . (W_k o_i + b) / sqrt(D) (inactive -> SLOT_INACTIVE_LOGIT)
    value = W_v h + b
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jax_tx.config import SLOT_INACTIVE_LOGIT, PolicyConfig, slot_count
from jax_tx.models.checks import check_memory_keys, check_policy_inputs
from torch_ref.models.policy import PolicyOutput, as_tensor, tree_leaves
from torch_ref.nn.attention import masked_softmax
from torch_ref.nn.common import layer_norm, torch_dtype
from torch_ref.nn.lstm import LSTM, lstm_initial_state

HIDDEN_GAIN = math.sqrt(2)


def linear(fan_in: int, fan_out: int, gain: float = HIDDEN_GAIN) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def embedding(num: int, features: int) -> nn.Embedding:
    emb = nn.Embedding(num, features)
    nn.init.normal_(emb.weight, std=0.02)
    return emb


def split_observation(cfg: PolicyConfig, obs: torch.Tensor):
    """obs [B, T, base_dim + S * slot_dim] -> base [B, T, base_dim], slots [B, T, S, slot_dim], active [B, T, S]."""
    try:
        n = slot_count(cfg, obs.shape[-1])
    except ValueError as err:
        raise ValueError(f"obs has shape {tuple(obs.shape)}: {err}") from None
    base = obs[..., : cfg.base_dim]
    slots = obs[..., cfg.base_dim :].reshape(*obs.shape[:-1], n, cfg.slot_dim)
    return base, slots, slots[..., 0] > 0.5


def grid_positions(cfg: PolicyConfig, num_slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(num_slots)
    return idx // cfg.slot_grid_cols, idx % cfg.slot_grid_cols


class SlotAttention(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = linear(cfg.d_model, 3 * cfg.num_heads * cfg.head_dim)
        self.out = linear(cfg.num_heads * cfg.head_dim, cfg.d_model)
        self.drop = nn.Dropout(cfg.attn_dropout)

    def forward(self, x, key_ok):
        """x [B, T, K, D], key_ok [B, T, K] -> [B, T, K, D]."""
        n, hd = self.cfg.num_heads, self.cfg.head_dim
        qkv = torch.movedim(self.qkv(x).reshape(*x.shape[:-1], 3, n, hd), 2, 4)  # [B, T, 3, N, K, H]
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, T, N, K, H]
        scores = torch.einsum("btnqh,btnkh->btnqk", q, k) * (hd**-0.5)
        probs = self.drop(masked_softmax(scores, key_ok[:, :, None, None, :]))
        out = torch.einsum("btnqk,btnkh->btqnh", probs, v).reshape(*x.shape[:-1], n * hd)
        return self.out(out)


class SlotFeedForward(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.fc1 = linear(cfg.d_model, cfg.d_ff)
        self.fc2 = linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x), approximate="none"))))


class SlotEncoderLayer(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.norm1, self.norm2 = layer_norm(cfg), layer_norm(cfg)
        self.attn = SlotAttention(cfg)
        self.ff = SlotFeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, key_ok):
        y = x + self.drop(self.attn(self.norm1(x), key_ok))
        return y + self.ff(self.norm2(y))


class SlotEncoder(nn.Module):
    """slots [B, T, S, slot_dim], active [B, T, S] -> (CLS [B, T, D], per-slot [B, T, S, D])."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        half = cfg.d_model // 2
        self.slot_embed = linear(cfg.slot_dim, cfg.d_model)
        self.row_embed = embedding(cfg.slot_grid_rows, half)
        self.col_embed = embedding(cfg.slot_grid_cols, half)
        self.cls_token = nn.Parameter(torch.randn(cfg.d_model) * 0.02)
        self.layers = nn.ModuleList([SlotEncoderLayer(cfg) for _ in range(cfg.num_layers)])
        self.final_norm = layer_norm(cfg)

    def forward(self, slots, active):
        b, t, s, _ = slots.shape
        rows, cols = grid_positions(self.cfg, s)
        pos = torch.cat([self.row_embed(rows), self.col_embed(cols)], dim=-1)  # [S, D]
        e = self.slot_embed(slots) + pos
        x = torch.cat([self.cls_token.expand(b, t, 1, -1), e], dim=2)
        key_ok = torch.cat([torch.ones(b, t, 1, dtype=torch.bool), active], dim=2)
        for layer in self.layers:
            x = layer(x, key_ok)
        o = self.final_norm(x)
        return o[:, :, 0], o[:, :, 1:]


class SlotPolicy(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        d, hidden = cfg.d_model, cfg.lstm_width
        self.global_encoder = linear(cfg.base_dim, d)
        self.slot_encoder = SlotEncoder(cfg)
        self.fusion = linear(2 * d, d)
        self.lstm = LSTM(cfg, d, hidden)
        self.actor_out = linear(hidden, cfg.num_actions, 0.01)
        self.critic_out = linear(hidden, 1, 1.0)
        self.slot_query = linear(hidden, d, 0.01)
        self.slot_key = linear(d, d)

    def forward(self, obs, reset, memory, prev_action=None, prev_reward=None):
        """obs [B, T, base_dim + S * slot_dim], reset [B, T], memory -> (PolicyOutput, memory).

        out.logits = (action logits [B, T, A], slot logits [B, T, S]); prev_action / prev_reward unused.
        """
        cfg = self.cfg
        obs = as_tensor(obs).to(torch_dtype(cfg))
        reset = as_tensor(reset).to(torch.bool)
        check_policy_inputs(cfg, obs.shape, reset.shape, [leaf.shape[0] for leaf in tree_leaves(memory)])
        check_memory_keys(cfg.variant, ["c", "h"], list(memory))
        base, slots, active = split_observation(cfg, obs)
        g = torch.relu(self.global_encoder(base))
        cls, reps = self.slot_encoder(slots, active)
        z = torch.relu(self.fusion(torch.cat([g, cls], dim=-1)))
        h, memory = self.lstm(z, reset, memory)
        logits = self.actor_out(h)
        value = self.critic_out(h)[..., 0]
        q, k = self.slot_query(h), self.slot_key(reps)
        scores = torch.einsum("btd,btsd->bts", q, k) * (cfg.d_model**-0.5)
        slot_logits = scores.masked_fill(~active, SLOT_INACTIVE_LOGIT)
        return PolicyOutput((logits, slot_logits), value), memory


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    return lstm_initial_state(cfg, batch, cfg.lstm_width)
