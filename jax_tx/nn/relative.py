"""Transformer-XL relative multi-head attention (Dai et al. 2019).

    R   = W_r P,     P[k] = [sin(d_k f) | cos(d_k f)],  d_k = K-1-k (clamped), f_i = 10000^(-2i/D)
    AC  = (q + u) . k_j                      content terms (a)+(c), u = r_w_bias
    BD  = rel_shift((q + v) . R)             position terms (b)+(d), v = r_r_bias
    out = W_o softmax((AC + BD) / sqrt(H_d), masked) V

Queries come from the last T rows of the key sequence [memory | x] (the query block of the qkv kernel is
applied to those rows only). Shapes: B batch,
T queries, K = M + T keys, N heads, H head width, D model width.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.attention import masked_softmax
from jax_tx.nn.common import compute_dtype, dense, dense_kernel, matmul, param_dtype


def sinusoid_embedding(pos: jnp.ndarray, dim: int) -> jnp.ndarray:
    """[len(pos), dim] = cat[sin(pos f), cos(pos f)], f_i = 1 / 10000^(2i/dim) (not interleaved)."""
    inv_freq = 1.0 / (10000.0 ** (jnp.arange(0, dim, 2, dtype=pos.dtype) / dim))
    angles = pos[:, None] * inv_freq[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def relative_distances(num_keys: int, clamp_len: int, dtype) -> jnp.ndarray:
    """[K] distances K-1, ..., 0, clamped to clamp_len when clamp_len > 0."""
    pos = jnp.arange(num_keys - 1, -1, -1, dtype=dtype)
    return jnp.minimum(pos, clamp_len) if clamp_len > 0 else pos


def rel_shift(x: jnp.ndarray) -> jnp.ndarray:
    """Align position scores by distance: out[..., i, j] = x[..., i, j + T - 1 - i].

    x: [B, N, T, K] with column k the score against distance K-1-k. Afterwards entry
    (i, j) scores distance M + i - j (M = K - T); entries with j > M + i hold garbage
    that the causal mask always hides. Pad one zero column, view as [K+1, T], drop the
    first row, view back (NVIDIA's layout of the kimiyoung trick).
    """
    b, n, t, k = x.shape
    padded = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (1, 0)))
    return padded.reshape(b, n, k + 1, t)[:, :, 1:, :].reshape(b, n, t, k)


class RelMultiHeadAttention(nn.Module):
    """Relative multi-head attention with bias-free projections (qkv, r_net; o_net biased if attn_out_bias)."""

    cfg: PolicyConfig

    @nn.compact
    def __call__(self, keys_in: jnp.ndarray, allowed: jnp.ndarray, deterministic: bool) -> jnp.ndarray:
        """keys_in [B, K, D] (queries = last T rows), allowed [B, T, K] -> [B, T, D]."""
        cfg = self.cfg
        n, h = cfg.num_heads, cfg.head_dim
        b, k_len, _ = keys_in.shape
        t = allowed.shape[1]
        w_qkv = dense_kernel(cfg, keys_in.shape[-1], 3 * n * h, "qkv")  # columns [q | k | v], each (N, H)
        keys_in, w_qkv = nn.dtypes.promote_dtype(keys_in, w_qkv, dtype=compute_dtype(cfg))
        q = matmul(keys_in[:, -t:], w_qkv[:, : n * h]).reshape(b, t, n, h)  # [B,T,N,H]
        kv = matmul(keys_in, w_qkv[:, n * h :]).reshape(b, k_len, 2, n, h)
        k, v = kv[:, :, 0], kv[:, :, 1]  # [B,K,N,H]
        pdt = param_dtype(cfg)
        r_w_bias = self.param("r_w_bias", nn.initializers.normal(0.02), (n, h), pdt)
        r_r_bias = self.param("r_r_bias", nn.initializers.normal(0.02), (n, h), pdt)
        pos = sinusoid_embedding(relative_distances(k_len, cfg.clamp_len, pdt), cfg.d_model)
        r = dense(cfg, n * h, "r_net", use_bias=False)(pos).reshape(k_len, n, h)
        ac = jnp.einsum("btnh,bknh->bntk", q + r_w_bias.astype(q.dtype), k)
        bd = rel_shift(jnp.einsum("btnh,knh->bntk", q + r_r_bias.astype(q.dtype), r.astype(q.dtype)))
        probs = masked_softmax((ac + bd) * (h**-0.5), allowed[:, None])
        probs = nn.Dropout(cfg.attn_dropout)(probs, deterministic=deterministic)
        out = jnp.einsum("bntk,bknh->btnh", probs, v).reshape(b, t, n * h)
        return dense(cfg, cfg.d_model, "o_net", use_bias=cfg.attn_out_bias)(out)
