"""Episode masks (twin of jax_tx/nn/attention.py): keys [memory | x], ids from resets."""

from __future__ import annotations

import torch


def episode_ids(reset: torch.Tensor) -> torch.Tensor:
    """ids[b, t] = sum_{s <= t} reset[b, s]."""
    return torch.cumsum(reset.to(torch.int64), dim=1)


def memory_key_ids(mem_valid: torch.Tensor, reset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    query_ids = episode_ids(reset)
    mem_ids = torch.where(mem_valid, 0, -1).to(torch.int64)
    return torch.cat([mem_ids, query_ids], dim=1), query_ids


def memory_attention_mask(mem_valid: torch.Tensor, reset: torch.Tensor, window: int | None) -> torch.Tensor:
    """allowed[b, t, k] for queries x_t against keys [memory | x] ([B, T, M+T] bool)."""
    num_mem, steps = mem_valid.shape[1], reset.shape[1]
    key_ids, query_ids = memory_key_ids(mem_valid, reset)
    dist = (num_mem + torch.arange(steps))[:, None] - torch.arange(num_mem + steps)[None, :]
    visible = dist >= 0
    if window is not None:
        visible = visible & (dist <= window)
    return (query_ids[:, :, None] == key_ids[:, None, :]) & visible[None]


def roll_memory(mem_valid: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
    """Validity of the next memory: the last M keys that share the final episode."""
    num_mem = mem_valid.shape[1]
    key_ids, query_ids = memory_key_ids(mem_valid, reset)
    return key_ids[:, -num_mem:] == query_ids[:, -1:]


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis where allowed; masked entries get finfo.min."""
    s = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(s, dim=-1)
