"""Metta's token-observation encoder: shim -> Fourier tokenizer -> Perceiver latents (twin: torch_ref/models/encoders).

obs uint8 [B, T, N, 3], N = obs_dim tokens per step. Byte 0 packs the coordinate (x = c >> 4, y = c & 15),
byte 1 is the attribute id a, byte 2 the value u. A token whose byte 0 is 0xFF is padding (valid = c != 0xFF).
Shim:       u' = u / norm[a]                                   (norm = token_value_norms, 1.0 beyond it)
Tokenizer:  f = [E(a) | cos(xh w) | sin(xh w) | cos(yh w) | sin(yh w) | u'],  w_k = 2^k (k < K),
            xh = x / (G - 1) * 2 - 1 (G = token_grid_size); f = 0 for padding; E(255) = 0   [B, T, N, F]
Perceiver (P = latent_dim, S heads of width Q = P / S, L latents; every LayerNorm has a bias, eps 1e-5):
            k, v = W_k LN_tok(f), W_v LN_tok(f)                (no bias; shared by every layer)
            z_0  = latents [L, P] for every (b, t)
            z   += W_o softmax(W_q LN(z) k^T / sqrt(Q), padded keys masked) v + b_o        (per layer)
            z   += W_2 GELU(W_1 LN(z) + b_1) + b_2             (exact erf GELU, width token_mlp_ratio * P)
            x    = mean_L LN_final(z)                           [B, T, P];  x = W_in x + b_in when P != d_model
A padding token gets weight exactly 0 and the sums over tokens run in index order (token_attention), so
inserting one anywhere changes nothing, bit for bit; an all-padding step attends uniformly to its (zero-feature)
tokens, as Metta's -max additive mask does, and stays finite.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.config import TOKEN_PAD, PolicyConfig
from jax_tx.nn.common import compute_dtype, dense, param_dtype

LN_EPS = 1e-5
"""Every encoder LayerNorm uses torch's default epsilon (Metta's modules), in both twins."""


def value_norm_table(cfg: PolicyConfig) -> np.ndarray:
    """[256] divisor per attribute id: token_value_norms, then 1.0."""
    table = np.ones(256, np.float64)
    table[: len(cfg.token_value_norms)] = cfg.token_value_norms
    return table


def token_valid(obs) -> jnp.ndarray:
    """[B, T, N] bool: the token is not padding (coordinate byte != 0xFF)."""
    return obs[..., 0] != TOKEN_PAD


def token_features(cfg: PolicyConfig, obs, attr_embed: nn.Module, dtype) -> tuple[jnp.ndarray, jnp.ndarray]:
    """obs uint8 [B, T, N, 3] -> (features f [B, T, N, F], valid [B, T, N]); see the module docstring."""
    valid = token_valid(obs)
    coord, attr = obs[..., 0].astype(jnp.int32), obs[..., 1].astype(jnp.int32)
    x, y = (coord >> 4).astype(dtype), (coord & 15).astype(dtype)
    value = obs[..., 2].astype(dtype) / jnp.asarray(value_norm_table(cfg), dtype)[attr]
    known = valid & (attr < cfg.token_attr_vocab)
    emb = attr_embed(jnp.where(known, attr, 0)).astype(dtype) * (known & (attr != TOKEN_PAD))[..., None]
    w = 2.0 ** jnp.arange(cfg.token_fourier_freqs, dtype=dtype)
    span = cfg.token_grid_size - 1
    ax = (x / span * 2 - 1)[..., None] * w
    ay = (y / span * 2 - 1)[..., None] * w
    feats = jnp.concatenate([emb, jnp.cos(ax), jnp.sin(ax), jnp.cos(ay), jnp.sin(ay), value[..., None]], axis=-1)
    return jnp.where(valid[..., None], feats, 0.0), valid


def token_attention(scores, v, valid) -> jnp.ndarray:
    """softmax_n(scores) v over the tokens, padded tokens masked: scores [B, T, S, L, N], v [B, T, N, S, Q],
    valid [B, T, N] -> [B, T, L, S, Q].

    The sums over n run token by token in index order, so a masked token adds exact zeros wherever it stands
    (a fused reduction's order depends on N). A step with no valid token attends uniformly to all of them.
    """
    work = jnp.promote_types(scores.dtype, jnp.float32)
    allowed = valid | ~valid.any(axis=-1, keepdims=True)
    s = jnp.where(allowed[:, :, None, None, :], scores.astype(work), -jnp.inf)
    e = jnp.exp(s - jax.lax.stop_gradient(s.max(axis=-1, keepdims=True)))  # masked: exactly 0
    v = v.astype(work)
    num = e[..., 0, None] * v[:, :, 0, :, None, :]
    den = e[..., 0]
    for n in range(1, e.shape[-1]):
        num = num + e[..., n, None] * v[:, :, n, :, None, :]
        den = den + e[..., n]
    return jnp.swapaxes(num / den[..., None], 2, 3).astype(scores.dtype)


def _norm(cfg: PolicyConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LN_EPS, dtype=compute_dtype(cfg), param_dtype=param_dtype(cfg), name=name)


def _attr_init(key, shape, dtype):
    """trunc_normal(0.02) with the padding row 255 (if present) at zero, as Metta's padding_idx=255."""
    table = nn.initializers.truncated_normal(0.02)(key, shape, dtype)
    return table.at[TOKEN_PAD].set(0.0) if shape[0] > TOKEN_PAD else table


class PerceiverLayer(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, z, k, v, valid):
        """z [B, T, L, P], k/v [B, T, N, S, Q], valid [B, T, N] -> z [B, T, L, P]."""
        cfg = self.cfg
        p, s = cfg.latent_dim, cfg.token_num_heads
        q = dense(cfg, p, "q_proj", use_bias=False)(_norm(cfg, "latent_norm")(z))
        q = q.reshape(*q.shape[:3], s, p // s)
        scores = jnp.einsum("btlsq,btnsq->btsln", q, k) * ((p // s) ** -0.5)
        out = token_attention(scores, v, valid).reshape(z.shape)
        z = z + dense(cfg, p, "attn_out_proj")(out)
        h = dense(cfg, cfg.token_mlp_ratio * p, "mlp_0")(_norm(cfg, "mlp_norm")(z))
        return z + dense(cfg, p, "mlp_2")(jax.nn.gelu(h, approximate=False))


class TokenEncoder(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, obs):
        """obs uint8 [B, T, N, 3] -> x [B, T, d_model]."""
        cfg = self.cfg
        pdt = param_dtype(cfg)
        p, s = cfg.latent_dim, cfg.token_num_heads
        attr_embed = nn.Embed(
            cfg.token_attr_vocab,
            cfg.token_attr_embed_dim,
            param_dtype=pdt,
            embedding_init=_attr_init,
            name="attr_embeds",
        )
        feats, valid = token_features(cfg, obs, attr_embed, pdt)
        t = _norm(cfg, "token_norm")(feats)
        b, steps, n = feats.shape[:3]
        k = dense(cfg, p, "k_proj", use_bias=False)(t).reshape(b, steps, n, s, p // s)
        v = dense(cfg, p, "v_proj", use_bias=False)(t).reshape(b, steps, n, s, p // s)
        latents = self.param("latents", nn.initializers.truncated_normal(0.02), (1, cfg.token_num_latents, p), pdt)
        z = jnp.broadcast_to(latents.astype(k.dtype)[None], (b, steps, cfg.token_num_latents, p))
        for i in range(cfg.token_num_layers):
            z = PerceiverLayer(cfg, name=f"layers_{i}")(z, k, v, valid)
        x = _norm(cfg, "final_norm")(z).mean(axis=2)
        if p != cfg.d_model:
            x = dense(cfg, cfg.d_model, "input_proj", kernel_init=nn.initializers.orthogonal(1.0))(x)
        return x
