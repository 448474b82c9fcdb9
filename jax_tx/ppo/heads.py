"""Factored discrete actions: a tuple of K categorical heads, with per-head action masks.

A policy's `out.logits` is one array [..., A] (a single head, as for every variant but `slot`) or
a tuple of K arrays [..., A_k] (the slot policy: (action type [..., A], slot [..., S])). A joint
action is int32[...] for one head and int32[..., K] for K heads; the heads are independent given
the state, so

    log pi(a) = sum_k log softmax(l_k)[a_k]        H(pi) = sum_k H_k,  H_k = -sum_j p_kj log p_kj

Masks: bool[..., sum_k A_k], the heads' masks concatenated (width 0: no mask). A masked entry's
logit becomes MASKED_LOGIT = -1e9, so its probability exp(-1e9 - max) is exactly 0 in float32,
Gumbel-max sampling never picks it (float32 Gumbel noise lies in about [-4.5, 16.7]) and it adds
0 * (-1e9) = 0 to the entropy. A step whose mask leaves a head nothing legal is an error
(`check_masks`): there is no distribution to sample from.

A single-head policy on a factored env (the flat LSTM baseline on the slot task) has one head of
width sum_k A_k; `SplitHeads` cuts it into the env's K heads without touching the param tree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.config import SLOT_INACTIVE_LOGIT, PolicyConfig, slot_count

MASKED_LOGIT = SLOT_INACTIVE_LOGIT


class ActionMaskError(ValueError):
    """An action mask leaves a head no legal action."""


def action_dims(env) -> tuple[int, ...]:
    """The env's head widths (A_1, ..., A_K): `env.action_dims` if it has them, else (num_actions,)."""
    dims = getattr(env, "action_dims", None)
    return tuple(int(d) for d in dims) if dims is not None else (int(env.num_actions),)


def policy_num_actions(env, variant: str) -> int:
    """PolicyConfig.num_actions for `variant` on `env`: the first head for `slot`, else all heads side by side."""
    dims = action_dims(env)
    return dims[0] if variant == "slot" else sum(dims)


def check_policy_env(cfg: PolicyConfig, env) -> None:
    """Raise ValueError naming the mismatch when cfg's heads cannot act in env."""
    dims = action_dims(env)
    hint = "build the policy config with config.preset(variant, env.obs_dim, heads.policy_num_actions(env, variant))"
    if cfg.obs_dim != env.obs_dim:
        raise ValueError(f"policy has obs_dim={cfg.obs_dim} but env {env.name!r} has obs_dim={env.obs_dim}; {hint}")
    if cfg.variant == "slot":
        want = (cfg.num_actions, slot_count(cfg, env.obs_dim))
        if dims != want:
            raise ValueError(
                f"slot policy has heads (action {want[0]}, slot {want[1]}) but env {env.name!r} has action heads "
                f"{dims}; the slot policy needs an env with action_dims = (num_actions, number of slots)"
            )
    elif cfg.num_actions != sum(dims):
        raise ValueError(
            f"policy has num_actions={cfg.num_actions} but env {env.name!r} has action heads {dims} "
            f"(sum {sum(dims)}); {hint}"
        )


def as_heads(logits) -> tuple:
    """logits (one array or a tuple of heads) -> tuple of K arrays [..., A_k]."""
    return tuple(logits) if isinstance(logits, (tuple, list)) else (logits,)


def split_masks(mask, heads: tuple):
    """bool[..., sum A_k] -> tuple of K bool[..., A_k]; None when the mask has width 0."""
    if mask is None or mask.shape[-1] == 0:
        return None
    widths = [h.shape[-1] for h in heads]
    if mask.shape[-1] != sum(widths):
        raise ValueError(f"action mask has width {mask.shape[-1]} but the policy heads have widths {widths}")
    return tuple(jnp.split(mask, np.cumsum(widths)[:-1], axis=-1))


def masked(heads: tuple, masks) -> tuple:
    """Each head's logits with its masked entries set to MASKED_LOGIT (unchanged when masks is None)."""
    if masks is None:
        return heads
    return tuple(jnp.where(m, h, jnp.asarray(MASKED_LOGIT, h.dtype)) for h, m in zip(heads, masks, strict=True))


def check_masks(masks) -> None:
    """ActionMaskError when some step's mask leaves a head with no legal action.

    Concrete masks raise at once; traced masks (under jit / scan) raise from the host through
    jax.debug.callback, only when the check fails (a lax.cond guards the callback).
    """
    if masks is None:
        return
    empty = jnp.stack([jnp.any(~jnp.any(m, axis=-1)) for m in masks])  # [K]
    if not isinstance(empty, jax.core.Tracer):
        _raise_if_empty(np.asarray(empty))
        return
    jax.lax.cond(jnp.any(empty), lambda e: jax.debug.callback(_raise_if_empty, e), lambda e: None, empty)


def _raise_if_empty(empty) -> None:
    empty = np.asarray(empty)
    if empty.any():
        heads = [int(i) for i in np.flatnonzero(empty)]
        raise ActionMaskError(
            f"an action mask leaves head(s) {heads} with no legal action at some step; the env's action_mask must "
            f"allow at least one action per head at every step"
        )


def log_prob_entropy(logits, actions, mask=None):
    """log pi(a) [...], total entropy [...] and per-head entropies (K arrays [...]), in float32.

    logits: one array [..., A] with actions int[...], or K heads with actions int[..., K].
    mask: bool[..., sum A_k] or None. One unmasked head computes exactly what jax_tx.ppo.loss did.
    """
    heads = tuple(h.astype(jnp.float32) for h in as_heads(logits))
    heads = masked(heads, split_masks(mask, heads))
    acts = (actions,) if len(heads) == 1 and actions.ndim == heads[0].ndim - 1 else _unstack(actions, len(heads))
    logps, ents = [], []
    for h, a in zip(heads, acts, strict=True):
        logp_all = jax.nn.log_softmax(h, axis=-1)
        logps.append(jnp.take_along_axis(logp_all, a[..., None].astype(jnp.int32), axis=-1)[..., 0])
        ents.append(-jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1))
    return sum(logps[1:], logps[0]), sum(ents[1:], ents[0]), tuple(ents)


def _unstack(actions, k: int) -> tuple:
    if actions.shape[-1] != k:
        raise ValueError(f"actions have shape {tuple(actions.shape)}; a policy with {k} heads needs [..., {k}]")
    return tuple(actions[..., i] for i in range(k))


def select_actions(key, logits, mask=None, greedy: bool = False):
    """Sample (or argmax) every head: (actions int32 [B] or [B, K], log pi(a) [B]).

    One unmasked head draws exactly `jax.random.categorical(key, logits)` as before.
    """
    heads = as_heads(logits)
    masks = split_masks(mask, heads)
    check_masks(masks)
    heads = masked(heads, masks)
    keys = (key,) if len(heads) == 1 else tuple(jax.random.split(key, len(heads)))
    if greedy:
        acts = [jnp.argmax(h, axis=-1).astype(jnp.int32) for h in heads]
    else:
        acts = [jax.random.categorical(k, h).astype(jnp.int32) for k, h in zip(keys, heads, strict=True)]
    logps = [
        jnp.take_along_axis(jax.nn.log_softmax(h), a[:, None], axis=-1)[:, 0] for h, a in zip(heads, acts, strict=True)
    ]
    logp = sum(logps[1:], logps[0])
    actions = acts[0] if len(heads) == 1 else jnp.stack(acts, axis=-1)
    return actions, logp


def first_action(actions):
    """The first head's action [B] (what prev_action carries for a factored action)."""
    return actions if actions.ndim == 1 else actions[:, 0]


def env_masks(env, env_state, batch: int):
    """vmap(env.action_mask)(state) as bool[B, sum A_k]; bool[B, 0] (no mask) when the env has none."""
    if not hasattr(env, "action_mask"):
        return jnp.zeros((batch, 0), bool)
    return jax.vmap(env.action_mask)(env_state).astype(bool)


@dataclasses.dataclass(frozen=True)
class SplitHeads:
    """A single-head policy acting in a factored env: its logits [..., sum A_k] cut into the env's heads.

    Same init / apply signature and the same param tree as the wrapped module.
    """

    module: Any
    dims: tuple[int, ...]

    def init(self, *args, **kwargs):
        return self.module.init(*args, **kwargs)

    def apply(self, *args, **kwargs):
        out, memory = self.module.apply(*args, **kwargs)
        cuts = np.cumsum(self.dims)[:-1]
        return out._replace(logits=tuple(jnp.split(out.logits, cuts, axis=-1))), memory


def wrap_for_env(model, cfg: PolicyConfig, env):
    """The model as the PPO learner drives it in env: SplitHeads for a single-head policy on a factored env."""
    dims = action_dims(env)
    if cfg.variant != "slot" and len(dims) > 1:
        return SplitHeads(model, dims)
    return model
