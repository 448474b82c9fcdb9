"""Slot transformer actor-critic: a set of entity slots read by a small transformer, fused with
global features, carried by an LSTM, with an action head and a slot-selection head.

Observation (flat, per step): [base (base_dim) | slot_0 | ... | slot_{N-1}] (slot_dim each);
feature 0 of a slot is its active flag (active iff > 0.5). N is read from the input width,
so the same weights run any 1 <= N <= slot_grid_rows * slot_grid_cols.

    g      = ReLU(W_g base + b)                                        [B, T, D]
    e_i    = W_s slot_i + b + [R[i // cols] | C[i % cols]]             [B, T, S, D]  (R, C: D/2 each)
    x      = [cls | e_0 ... e_{S-1}]                                   [B, T, 1+S, D]
    layer:   y = x + Dropout(MHA(LN1(x), keys: cls and active slots));  x = y + FF(LN2(y)),  FF GELU (erf)
    o      = LN_f(x);   c = o[:, :, 0],  r_i = o[:, :, 1+i]
    z      = ReLU(W_f [g | c] + b);   h, mem = LSTM(z, reset, mem)      [B, T, H]
    logits = W_pi h + b                                                [B, T, A]
    slot   = (W_q h + b) . (W_k r_i + b) / sqrt(D),  inactive -> SLOT_INACTIVE_LOGIT   [B, T, S]
    value  = W_v h + b                                                 [B, T]

Each (b, t) runs the slot transformer on its own; only the LSTM carries memory, so
memory = {"h", "c": [B, H]}. Init: orthogonal, gain sqrt 2 (hidden), 0.01 (action and
query projections), 1.0 (value); embeddings and CLS N(0, 0.02); LSTM forget bias 1.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_tx.config import SLOT_INACTIVE_LOGIT, PolicyConfig, slot_count
from jax_tx.models.checks import check_memory_keys, check_policy_inputs
from jax_tx.models.policy import PolicyOutput, orthogonal
from jax_tx.nn.attention import masked_softmax
from jax_tx.nn.common import compute_dtype, dense, layer_norm, param_dtype, state_dtype
from jax_tx.nn.lstm import LSTM, lstm_initial_state

HIDDEN_GAIN = math.sqrt(2)


def split_observation(cfg: PolicyConfig, obs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """obs [B, T, base_dim + S * slot_dim] -> base [B, T, base_dim], slots [B, T, S, slot_dim], active [B, T, S]."""
    try:
        n = slot_count(cfg, obs.shape[-1])
    except ValueError as err:
        raise ValueError(f"obs has shape {tuple(obs.shape)}: {err}") from None
    base = obs[..., : cfg.base_dim]
    slots = obs[..., cfg.base_dim :].reshape(*obs.shape[:-1], n, cfg.slot_dim)
    return base, slots, slots[..., 0] > 0.5


def grid_positions(cfg: PolicyConfig, num_slots: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Slot i -> (row i // slot_grid_cols, column i % slot_grid_cols), each [S] int32."""
    idx = jnp.arange(num_slots, dtype=jnp.int32)
    return idx // cfg.slot_grid_cols, idx % cfg.slot_grid_cols


def embed(cfg: PolicyConfig, num: int, features: int, name: str) -> nn.Embed:
    return nn.Embed(
        num,
        features,
        dtype=compute_dtype(cfg),
        param_dtype=param_dtype(cfg),
        embedding_init=nn.initializers.normal(0.02),
        name=name,
    )


class SlotAttention(nn.Module):
    """Multi-head self-attention over the tokens of one step, keys masked by `key_ok`."""

    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, key_ok, deterministic: bool):
        """x [B, T, K, D], key_ok [B, T, K] -> [B, T, K, D];  softmax(q k^T / sqrt(H_d)) v, then W_o."""
        cfg = self.cfg
        n, hd = cfg.num_heads, cfg.head_dim
        qkv = dense(cfg, 3 * n * hd, "qkv", kernel_init=orthogonal(HIDDEN_GAIN))(x)
        qkv = jnp.moveaxis(qkv.reshape(*x.shape[:-1], 3, n, hd), 2, 4)  # [B, T, 3, N, K, H]: heads first
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, T, N, K, H]
        scores = jnp.einsum("btnqh,btnkh->btnqk", q, k) * (hd**-0.5)
        probs = masked_softmax(scores, key_ok[:, :, None, None, :])
        probs = nn.Dropout(cfg.attn_dropout)(probs, deterministic=deterministic)
        out = jnp.einsum("btnqk,btnkh->btqnh", probs, v).reshape(*x.shape[:-1], n * hd)
        return dense(cfg, cfg.d_model, "out", kernel_init=orthogonal(HIDDEN_GAIN))(out)


class SlotFeedForward(nn.Module):
    """FF(x) = Dropout(W2 Dropout(GELU_erf(W1 x + b1)) + b2)."""

    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, deterministic: bool):
        cfg = self.cfg
        h = jax.nn.gelu(dense(cfg, cfg.d_ff, "fc1", kernel_init=orthogonal(HIDDEN_GAIN))(x), approximate=False)
        h = nn.Dropout(cfg.dropout)(h, deterministic=deterministic)
        y = dense(cfg, cfg.d_model, "fc2", kernel_init=orthogonal(HIDDEN_GAIN))(h)
        return nn.Dropout(cfg.dropout)(y, deterministic=deterministic)


class SlotEncoderLayer(nn.Module):
    """Pre-norm: y = x + Dropout(MHA(LN1(x))); out = y + FF(LN2(y))."""

    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, key_ok, deterministic: bool):
        cfg = self.cfg
        attn = SlotAttention(cfg, name="attn")(layer_norm(cfg, "norm1")(x), key_ok, deterministic)
        y = x + nn.Dropout(cfg.dropout)(attn, deterministic=deterministic)
        return y + SlotFeedForward(cfg, name="ff")(layer_norm(cfg, "norm2")(y), deterministic)


class SlotEncoder(nn.Module):
    """slots [B, T, S, slot_dim], active [B, T, S] -> (CLS [B, T, D], per-slot [B, T, S, D])."""

    cfg: PolicyConfig

    @nn.compact
    def __call__(self, slots, active, deterministic: bool):
        cfg = self.cfg
        b, t, s, _ = slots.shape
        e = dense(cfg, cfg.d_model, "slot_embed", kernel_init=orthogonal(HIDDEN_GAIN))(slots)
        rows, cols = grid_positions(cfg, s)
        half = cfg.d_model // 2
        pos = jnp.concatenate(
            [
                embed(cfg, cfg.slot_grid_rows, half, "row_embed")(rows),
                embed(cfg, cfg.slot_grid_cols, half, "col_embed")(cols),
            ],
            axis=-1,
        )  # [S, D]
        cls = self.param("cls_token", nn.initializers.normal(0.02), (cfg.d_model,), param_dtype(cfg))
        e = e + pos.astype(e.dtype)
        x = jnp.concatenate([jnp.broadcast_to(cls.astype(e.dtype), (b, t, 1, cfg.d_model)), e], axis=2)
        key_ok = jnp.concatenate([jnp.ones((b, t, 1), bool), active], axis=2)  # CLS always visible
        # slot_remat: keep only each layer's input for the backward pass (argnum 3 = deterministic, self = 0)
        layer = nn.remat(SlotEncoderLayer, static_argnums=(3,)) if cfg.slot_remat else SlotEncoderLayer
        for i in range(cfg.num_layers):
            x = layer(cfg, name=f"layers_{i}")(x, key_ok, deterministic)
        o = layer_norm(cfg, "final_norm")(x)
        return o[:, :, 0], o[:, :, 1:]


class SlotPolicy(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, obs, reset, memory, prev_action=None, prev_reward=None, deterministic: bool = True):
        """obs [B, T, base_dim + S * slot_dim], reset [B, T], memory {"h", "c"} -> (PolicyOutput, memory).

        out.logits = (action logits [B, T, A], slot logits [B, T, S]); out.value [B, T].
        prev_action / prev_reward are accepted for a uniform call signature and unused.
        """
        cfg = self.cfg
        leaves = jax.tree_util.tree_leaves(memory)
        check_policy_inputs(cfg, obs.shape, jnp.shape(reset), [leaf.shape[0] for leaf in leaves])
        check_memory_keys(cfg.variant, ["c", "h"], list(memory))
        base, slots, active = split_observation(cfg, obs)
        reset = jnp.asarray(reset).astype(bool)
        g = nn.relu(dense(cfg, cfg.d_model, "global_encoder", kernel_init=orthogonal(HIDDEN_GAIN))(base))
        cls, reps = SlotEncoder(cfg, name="slot_encoder")(slots, active, deterministic)
        fused = jnp.concatenate([g, cls.astype(g.dtype)], axis=-1)
        z = nn.relu(dense(cfg, cfg.d_model, "fusion", kernel_init=orthogonal(HIDDEN_GAIN))(fused))
        h, memory = LSTM(cfg, cfg.lstm_width, name="lstm")(z, reset, memory)
        out_dtype = state_dtype(cfg)
        logits = dense(cfg, cfg.num_actions, "actor_out", kernel_init=orthogonal(0.01))(h)
        value = dense(cfg, 1, "critic_out", kernel_init=orthogonal(1.0))(h)[..., 0]
        q = dense(cfg, cfg.d_model, "slot_query", kernel_init=orthogonal(0.01))(h)
        k = dense(cfg, cfg.d_model, "slot_key", kernel_init=orthogonal(HIDDEN_GAIN))(reps)
        scores = jnp.einsum("btd,btsd->bts", q, k.astype(q.dtype)) * (cfg.d_model**-0.5)
        slot_logits = jnp.where(active, scores.astype(out_dtype), SLOT_INACTIVE_LOGIT)
        out = PolicyOutput((logits.astype(out_dtype), slot_logits), value.astype(out_dtype))
        return out, memory


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    """LSTM state {"h", "c": [B, H]} of zeros."""
    return lstm_initial_state(cfg, batch, cfg.lstm_width)


def num_params(params) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
