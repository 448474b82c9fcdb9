"""The PPO loss on one minibatch (all inputs time-major [T, B], float32).

logratio = clip(logp - logp_old, -10, 10);  ratio = exp(logratio)
A_n      = (A - mean A) / (std A + 1e-8)                               (norm_adv)
L_pg     = mean(max(-A_n ratio, -A_n clip(ratio, 1 - eps, 1 + eps)))
L_v      = 0.5 mean(max((V - R)^2, (V_old + clip(V - V_old, -vc, vc) - R)^2))   (clip_vloss)
         = 0.5 mean((V - R)^2)                                          (otherwise)
H        = mean(entropy(softmax(logits)))
L        = L_pg + vf_coef L_v - ent_coef H

Factored actions (logits a tuple of K heads, actions [T, B, K], optional masks; see
jax_tx/ppo/heads.py): log pi(a) and H are summed over the heads; head_entropy holds each H_k.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct

from jax_tx.ppo import heads as heads_lib


@struct.dataclass
class LossTerms:
    total: jnp.ndarray
    policy_loss: jnp.ndarray
    value_loss: jnp.ndarray
    entropy: jnp.ndarray
    approx_kl: jnp.ndarray
    clipfrac: jnp.ndarray
    head_entropy: tuple = ()
    """Per-head mean entropies (K of them) for a factored policy; () for a single head."""


def log_prob_entropy(logits, actions):
    """log pi(a) [T, B] and entropy [T, B] of categorical logits [T, B, A] (computed in float32)."""
    chex.assert_rank(logits, 3)
    logp_all = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    logp = jnp.take_along_axis(logp_all, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
    return logp, entropy


def normalize(x, eps: float = 1e-8):
    return (x - x.mean()) / (x.std() + eps)


def ppo_loss(
    logits,
    values,
    actions,
    old_logp,
    old_values,
    advantages,
    returns,
    *,
    clip_coef,
    vf_clip_coef,
    ent_coef,
    vf_coef: float,
    norm_adv: bool = True,
    clip_vloss: bool = True,
    mask=None,
) -> LossTerms:
    """logits [T, B, A] (or K heads [T, B, A_k] with actions [T, B, K]); mask bool[T, B, sum A_k] or None."""
    factored = isinstance(logits, (tuple, list))
    chex.assert_rank(values, 2)
    chex.assert_equal_shape([values, old_logp, old_values, advantages, returns])
    if factored:
        chex.assert_rank(list(logits), 3)
        logp, entropy, per_head = heads_lib.log_prob_entropy(logits, actions, mask)
    else:
        chex.assert_rank(logits, 3)
        chex.assert_equal_shape([values, actions])
        if mask is not None and mask.shape[-1] > 0:
            logp, entropy, _ = heads_lib.log_prob_entropy(logits, actions, mask)
        else:
            logp, entropy = log_prob_entropy(logits, actions)
    values = values.astype(jnp.float32)
    logratio = jnp.clip(logp - old_logp, -10.0, 10.0)
    ratio = jnp.exp(logratio)
    adv = normalize(advantages) if norm_adv else advantages
    pg = jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef)).mean()
    if clip_vloss:
        clipped = old_values + jnp.clip(values - old_values, -vf_clip_coef, vf_clip_coef)
        v_loss = 0.5 * jnp.maximum((values - returns) ** 2, (clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((values - returns) ** 2).mean()
    ent = entropy.mean()
    return LossTerms(
        total=pg + vf_coef * v_loss - ent_coef * ent,
        policy_loss=pg,
        value_loss=v_loss,
        entropy=ent,
        approx_kl=((ratio - 1.0) - logratio).mean(),
        clipfrac=(jnp.abs(ratio - 1.0) > clip_coef).astype(jnp.float32).mean(),
        head_entropy=tuple(h.mean() for h in per_head) if factored else (),
    )
