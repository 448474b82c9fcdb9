"""Sliding-window transformer (Metta's vanilla benchmark core) with an episode-masked KV cache.

Per step t, S = 4 tokens, each plus the absolute position of the step in its episode:
    tok(t) = [ c,  x_t,  W_r r_{t-1} + b_r + W_d reset_t + b_d,  W_a onehot(a_{t-1}) + b_a ] + PE(p_t)
    c: learned class token ~ N(0, 1); x_t: the encoder latent; a_{t-1} = -1 (no action) -> zeros
    PE(p)[2i] = sin(p w_i), PE(p)[2i+1] = cos(p w_i), w_i = 10000^(-2i/D); p_t = steps since episode start
(sliding_positions "none" drops the + PE(p_t) term; the action token projects a one-hot of the previous
action, where Metta projected the index as a float scalar).
Block l (pre-norm, biased q/k/v/out projections, exact erf GELU):
    q, k, v = W_{q,k,v} LN1(h) + b;   keys/values = [cache_l | k], [cache_l | v]
    h = h + Dropout(W_o softmax(q k^T / sqrt(H), allowed) v + b_o)
    h = h + Dropout(W_2 GELU(W_1 LN2(h) + b_1) + b_2)
y_t = pool(LN_final(h)) over the S tokens of step t: mean | cls (token 0) | none (W_p [tok_0 .. tok_3] + b_p,
a projection of the concatenation back to D, so the heads always see width D).

Window: a token of step t sees all S tokens of step t (bidirectionally) and the C = max_cache_size
tokens before them, in one-step calls (the cache) and in sequence calls alike, so both give the
same function. Keys of an earlier episode (or never filled) are masked; with cache_across_resets
(Metta's behaviour) filled keys stay visible across episode boundaries, so a reset is then not
the same as fresh memory. Memory (keys/values detached, zeroed where masked):
    {"k", "v": [B, L, C, N, H], "valid": [B, C] bool, "position": [B] int32 (next step's p)}
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.models.aux_tokens import action_one_hot, check_action_range, history_dense, history_inputs
from jax_tx.nn.attention import masked_softmax, memory_key_ids, roll_memory
from jax_tx.nn.common import dense, layer_norm, param_dtype, state_dtype

TOKENS_PER_STEP = 4


def _dense(cfg: PolicyConfig, features: int, name: str) -> nn.Dense:
    """Linear with xavier-uniform kernel and zero bias (set identically in the torch twin)."""
    return dense(cfg, features, name, kernel_init=nn.initializers.xavier_uniform())


def step_positions(reset: jnp.ndarray, start: jnp.ndarray) -> jnp.ndarray:
    """p[b, t] = t - (last s <= t with reset[b, s]) if there is one, else start[b] + t  ([B, T] int32)."""
    steps = jnp.arange(reset.shape[1], dtype=jnp.int32)
    last = jax.lax.cummax(jnp.where(reset, steps, -1), axis=1)
    return jnp.where(last >= 0, steps - last, start[:, None].astype(jnp.int32) + steps)


def sinusoid_positions(pos: jnp.ndarray, dim: int, dtype) -> jnp.ndarray:
    """[..., dim]: PE[2i] = sin(p w_i), PE[2i+1] = cos(p w_i), w_i = 1 / 10000^(2i/dim) (interleaved)."""
    inv_freq = 1.0 / (10000.0 ** (jnp.arange(0, dim, 2, dtype=dtype) / dim))
    angles = pos.astype(dtype)[..., None] * inv_freq
    return jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(*pos.shape, -1)[..., :dim]


def token_resets(reset: jnp.ndarray) -> jnp.ndarray:
    """[B, T] -> [B, T*S]: a step's reset marks its first token only (episode ids per token)."""
    b, t = reset.shape
    return jnp.zeros((b, t, TOKENS_PER_STEP), bool).at[:, :, 0].set(reset).reshape(b, t * TOKENS_PER_STEP)


def window_mask(valid: jnp.ndarray, reset: jnp.ndarray, across_resets: bool) -> jnp.ndarray:
    """allowed[b, q, k] for the T*S query tokens against keys [cache (C) | new tokens (T*S)].

    Token q of step s(q) sees key k iff S s(q) <= k < C + S (s(q) + 1) (its own step and the C
    tokens before it) and k is filled and, unless across_resets, of the same episode.
    """
    num_cache, steps = valid.shape[1], reset.shape[1]
    q_step = jnp.arange(steps * TOKENS_PER_STEP) // TOKENS_PER_STEP
    k_idx = jnp.arange(num_cache + steps * TOKENS_PER_STEP)
    lo, hi = TOKENS_PER_STEP * q_step, num_cache + TOKENS_PER_STEP * (q_step + 1)
    window = (k_idx[None, :] >= lo[:, None]) & (k_idx[None, :] < hi[:, None])  # [Q, K]
    key_ids, query_ids = memory_key_ids(valid, token_resets(reset))
    same = (key_ids >= 0)[:, None, :] if across_resets else query_ids[:, :, None] == key_ids[:, None, :]
    return window[None] & same


def next_valid(valid: jnp.ndarray, reset: jnp.ndarray, across_resets: bool) -> jnp.ndarray:
    """Validity of the next cache: the last C keys, filled (and of the final episode unless across_resets)."""
    if across_resets:
        new = jnp.ones((reset.shape[0], reset.shape[1] * TOKENS_PER_STEP), bool)
        return jnp.concatenate([valid, new], axis=1)[:, -valid.shape[1] :]
    return roll_memory(valid, token_resets(reset))


class CachedAttention(nn.Module):
    """Multi-head attention of the new tokens over [cache | new] keys, biased projections."""

    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, cache_k, cache_v, allowed, deterministic: bool):
        """x [B, Q, D], cache_k/v [B, C, N, H], allowed [B, Q, C+Q] -> (out [B, Q, D], k, v [B, Q, N, H])."""
        cfg = self.cfg
        n, hd = cfg.num_heads, cfg.head_dim
        b, q_len, _ = x.shape
        q, k, v = (_dense(cfg, n * hd, name)(x).reshape(b, q_len, n, hd) for name in ("q_proj", "k_proj", "v_proj"))
        keys = jnp.concatenate([cache_k.astype(k.dtype), k], axis=1)
        values = jnp.concatenate([cache_v.astype(v.dtype), v], axis=1)
        scores = jnp.einsum("bqnh,bknh->bnqk", q, keys) * (hd**-0.5)
        probs = nn.Dropout(cfg.attn_dropout)(masked_softmax(scores, allowed[:, None]), deterministic=deterministic)
        out = jnp.einsum("bnqk,bknh->bqnh", probs, values).reshape(b, q_len, n * hd)
        return _dense(cfg, cfg.d_model, "out_proj")(out), k, v


class GeluFeedForward(nn.Module):
    """FF(x) = W_2 GELU(W_1 x + b_1) + b_2 with the exact (erf) GELU."""

    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x):
        h = jax.nn.gelu(_dense(self.cfg, self.cfg.d_ff, "fc1")(x), approximate=False)
        return _dense(self.cfg, self.cfg.d_model, "fc2")(h)


class SlidingBlock(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, h, cache_k, cache_v, allowed, deterministic: bool):
        """h [B, Q, D] -> (h [B, Q, D], this call's keys and values [B, Q, N, H])."""
        cfg = self.cfg
        a, k, v = CachedAttention(cfg, name="attn")(
            layer_norm(cfg, "norm1")(h), cache_k, cache_v, allowed, deterministic
        )
        h = h + nn.Dropout(cfg.dropout)(a, deterministic=deterministic)
        f = GeluFeedForward(cfg, name="ff")(layer_norm(cfg, "norm2")(h))
        return h + nn.Dropout(cfg.dropout)(f, deterministic=deterministic), k, v


class SlidingCore(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, reset, memory, aux, deterministic: bool):
        """x [B, T, D], reset [B, T] -> (y [B, T, D], next memory)."""
        cfg = self.cfg
        b, t, d = x.shape
        dt = x.dtype
        if aux.get("prev_action") is not None:
            check_action_range(aux["prev_action"], cfg.num_actions)
        rst, prev_action, prev_reward = history_inputs(reset, aux.get("prev_action"), aux.get("prev_reward"), dt)
        cls = self.param("cls_token", nn.initializers.normal(1.0), (d,), param_dtype(cfg)).astype(dt)
        reward_tok = history_dense(cfg, "reward_proj")(prev_reward[..., None])
        reward_tok = reward_tok + history_dense(cfg, "reset_proj")(rst[..., None])
        action_tok = history_dense(cfg, "action_proj")(action_one_hot(prev_action, cfg.num_actions, dt))
        tokens = jnp.stack([jnp.broadcast_to(cls, x.shape), x, reward_tok, action_tok], axis=2)  # [B, T, S, D]
        pos = step_positions(reset, memory["position"])
        if cfg.sliding_positions == "sinusoid":
            tokens = tokens + sinusoid_positions(pos, d, state_dtype(cfg)).astype(dt)[:, :, None, :]
        h = tokens.reshape(b, t * TOKENS_PER_STEP, d)

        valid = memory["valid"]
        allowed = window_mask(valid, reset, cfg.cache_across_resets)
        keep = next_valid(valid, reset, cfg.cache_across_resets)
        new_k, new_v = [], []
        for i in range(cfg.num_layers):
            cache_k, cache_v = memory["k"][:, i], memory["v"][:, i]
            h, k, v = SlidingBlock(cfg, name=f"layers_{i}")(h, cache_k, cache_v, allowed, deterministic)
            new_k.append(roll_cache(cache_k, k, keep))
            new_v.append(roll_cache(cache_v, v, keep))
        h = layer_norm(cfg, "final_norm")(h).reshape(b, t, TOKENS_PER_STEP, d)
        next_memory = {
            "k": jnp.stack(new_k, axis=1),
            "v": jnp.stack(new_v, axis=1),
            "valid": keep,
            "position": pos[:, -1] + 1,
        }
        proj = _dense(cfg, d, "pool_proj") if cfg.pooling == "none" else None
        return pool_tokens(h, cfg.pooling, proj), next_memory


def pool_tokens(h, pooling: str, proj):
    """[B, T, S, D] -> [B, T, D]: mean over S | token 0 (cls) | proj(concat of the S tokens) (none)."""
    if pooling == "mean":
        return h.mean(axis=2)
    if pooling == "cls":
        return h[:, :, 0]
    b, t, s, d = h.shape
    return proj(h.reshape(b, t, s * d))


def roll_cache(cache, new, keep):
    """Last C rows of [cache | new] ([B, C, N, H]), zeroed where not kept, no gradient."""
    rows = jnp.concatenate([cache, new.astype(cache.dtype)], axis=1)[:, -cache.shape[1] :]
    return jax.lax.stop_gradient(jnp.where(keep[:, :, None, None], rows, 0.0).astype(cache.dtype))


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    shape = (batch, cfg.num_layers, cfg.max_cache_size, cfg.num_heads, cfg.head_dim)
    return {
        "k": jnp.zeros(shape, state_dtype(cfg)),
        "v": jnp.zeros(shape, state_dtype(cfg)),
        "valid": jnp.full((batch, cfg.max_cache_size), cfg.memory_init == "zeros"),  # zeros: valid zero rows
        "position": jnp.zeros((batch,), jnp.int32),
    }


def make_core(cfg: PolicyConfig, name: str) -> nn.Module:
    return SlidingCore(cfg, name=name)
