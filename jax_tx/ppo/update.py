"""The PPO update: segments of H steps, shuffled across envs and segments, minibatches, epochs.

A rollout of T = n H steps from B envs is cut into S = n B segments (segment s = i B + b holds
steps i H .. i H + H - 1 of env b). Each segment is recomputed in sequence mode, one apply over
H steps starting from the memory the rollout stored at its first step, with the rollout's reset
flags: the update differentiates exactly the function the rollout ran (ratio = 1 before the
first gradient step when dropout is off).

Optimizer: clip_by_global_norm(max_grad_norm) then Adam / AdamW, learning rate injected each
iteration from the schedule.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jax_tx.config import PolicyConfig, PPOConfig
from jax_tx.ppo import heads
from jax_tx.ppo.advantages import gae
from jax_tx.ppo.loss import LossTerms, ppo_loss
from jax_tx.ppo.rollout import policy_inputs
from jax_tx.ppo.schedules import ScheduleValues


@struct.dataclass
class Segments:
    """Training data, time-major within a segment: leaves [H, S, ...]; memory leaves [S, ...]."""

    obs: jnp.ndarray
    reset: jnp.ndarray
    prev_action: jnp.ndarray
    prev_reward: jnp.ndarray
    action: jnp.ndarray
    logp: jnp.ndarray
    value: jnp.ndarray
    advantage: jnp.ndarray
    returns: jnp.ndarray
    reward: jnp.ndarray
    next_value: jnp.ndarray
    done: jnp.ndarray
    tail: jnp.ndarray
    """[S]: the advantage of the step after the segment (0 after the rollout's end), V-trace's A_H."""
    memory: Any
    mask: jnp.ndarray = None
    """bool[H, S, sum A_k]: the rollout's action masks (width 0: none); action is [H, S, K] for K heads."""


def to_segments(x, horizon: int):
    """[T, B, ...] -> [H, T/H * B, ...] with segment index s = i * B + b."""
    t, b = x.shape[:2]
    n = t // horizon
    x = x.reshape((n, horizon, b) + x.shape[2:])
    return jnp.swapaxes(x, 0, 1).reshape((horizon, n * b) + x.shape[3:])


def segment_tails(advantages, horizon: int):
    """[T, B] -> [S]: A at the first step of the following segment of the same env, 0 for the last."""
    t, b = advantages.shape
    starts = advantages[horizon::horizon]  # [n - 1, B]
    return jnp.concatenate([starts, jnp.zeros((1, b), advantages.dtype)], axis=0).reshape(-1)


def make_segments(trs, seg_memory, advantages, next_values, horizon: int) -> Segments:
    cut = lambda x: to_segments(x, horizon)  # noqa: E731
    done = trs.terminated | trs.truncated
    return Segments(
        obs=cut(trs.obs),
        reset=cut(trs.reset),
        prev_action=cut(trs.prev_action),
        prev_reward=cut(trs.prev_reward),
        action=cut(trs.action),
        logp=cut(trs.logp),
        value=cut(trs.value),
        advantage=cut(advantages),
        returns=cut(advantages + trs.value),
        reward=cut(trs.reward),
        next_value=cut(next_values),
        done=cut(done),
        tail=segment_tails(advantages, horizon),
        memory=seg_memory,
        mask=None if trs.mask is None else cut(trs.mask),
    )


def take(seg: Segments, idx) -> Segments:
    """The segments idx [M] of seg: [H, M, ...] leaves and [M, ...] memory."""
    memory = jax.tree_util.tree_map(lambda x: x[idx], seg.memory)
    rest = {k: getattr(seg, k) for k in seg.__dataclass_fields__ if k not in ("memory", "tail")}
    rest = {k: None if v is None else v[:, idx] for k, v in rest.items()}
    return Segments(memory=memory, tail=seg.tail[idx], **rest)


def forward(model, params, cfg: PolicyConfig, mb: Segments, rng=None):
    """Recompute a minibatch in sequence mode: (logits [H, M, A] or K heads [H, M, A_k], values [H, M]) in float32.

    rng=None: deterministic (no dropout), as in the rollout.
    """
    bt = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    kw = policy_inputs(cfg, bt(mb.obs), bt(mb.reset), bt(mb.prev_action), bt(mb.prev_reward))
    if rng is None:
        out, _ = model.apply(params, memory=mb.memory, deterministic=True, **kw)
    else:
        out, _ = model.apply(params, memory=mb.memory, deterministic=False, rngs={"dropout": rng}, **kw)
    logits = jax.tree_util.tree_map(lambda x: bt(x).astype(jnp.float32), out.logits)
    return logits, bt(out.value).astype(jnp.float32)


def uses_dropout(cfg: PolicyConfig) -> bool:
    return cfg.dropout > 0 or cfg.attn_dropout > 0


def minibatch_loss(params, model, cfg: PolicyConfig, ppo: PPOConfig, sched: ScheduleValues, mb: Segments, rng):
    logits, values = forward(model, params, cfg, mb, rng if uses_dropout(cfg) else None)
    advantages = mb.advantage
    if ppo.vtrace:
        logp, _, _ = heads.log_prob_entropy(jax.lax.stop_gradient(logits), mb.action, mb.mask)
        ratio = jnp.exp(jnp.clip(logp - mb.logp, -10.0, 10.0))
        advantages = gae(
            mb.reward,
            mb.value,
            mb.next_value,
            mb.done,
            ppo.gamma,
            ppo.gae_lambda,
            ratio=ratio,
            rho_clip=ppo.vtrace_rho_clip,
            c_clip=ppo.vtrace_c_clip,
            tail=mb.tail,
        )
    terms = ppo_loss(
        logits,
        values,
        mb.action,
        mb.logp,
        mb.value,
        advantages,
        mb.returns,
        clip_coef=sched.clip_coef,
        vf_clip_coef=sched.vf_clip_coef,
        ent_coef=sched.ent_coef,
        vf_coef=ppo.vf_coef,
        norm_adv=ppo.norm_adv,
        clip_vloss=ppo.clip_vloss,
        mask=mb.mask,
    )
    return terms.total, terms


def make_optimizer(ppo: PPOConfig) -> optax.GradientTransformation:
    """clip_by_global_norm -> Adam(W); the learning rate is a hyperparameter injected per iteration."""

    def build(learning_rate):
        if ppo.optimizer == "adamw":
            opt = optax.adamw(learning_rate, ppo.adam_b1, ppo.adam_b2, ppo.adam_eps, weight_decay=ppo.weight_decay)
        else:
            opt = optax.adam(learning_rate, ppo.adam_b1, ppo.adam_b2, ppo.adam_eps)
        return optax.chain(optax.clip_by_global_norm(ppo.max_grad_norm), opt)

    return optax.inject_hyperparams(build)(learning_rate=ppo.learning_rate)


def set_learning_rate(opt_state, lr):
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = jnp.asarray(lr, jnp.asarray(hp["learning_rate"]).dtype)
    return opt_state._replace(hyperparams=hp)


def global_norm(tree):
    """sqrt(sum of squares of every leaf): the norm clip_by_global_norm clips."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree)))


def sgd_step(model, cfg, ppo, optimizer, sched, params, opt_state, mb: Segments, rng):
    grad_fn = jax.value_and_grad(minibatch_loss, has_aux=True)
    (_, terms), grads = grad_fn(params, model, cfg, ppo, sched, mb, rng)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, terms, global_norm(grads)


def update(
    model, cfg: PolicyConfig, ppo: PPOConfig, optimizer, sched, params, opt_state, seg: Segments, key, constrain=None
):
    """update_epochs passes over shuffled minibatches: (params, opt_state, mean LossTerms, mean grad norm).

    The permutation is global (the same on any device count); `constrain` (Segments -> Segments, e.g.
    sharding.Placement.shard_minibatch) places each gathered minibatch before its gradient step.
    """
    num_seg = seg.tail.shape[0]
    chex.assert_equal(num_seg % ppo.num_minibatches, 0)
    mb_size = num_seg // ppo.num_minibatches
    opt_state = set_learning_rate(opt_state, sched.learning_rate)

    def minibatch(c, xs):
        params, opt_state = c
        idx, rng = xs
        mb = take(seg, idx) if constrain is None else constrain(take(seg, idx))
        params, opt_state, terms, gnorm = sgd_step(model, cfg, ppo, optimizer, sched, params, opt_state, mb, rng)
        return (params, opt_state), (terms, gnorm)

    def epoch(c, ekey):
        k_perm, k_drop = jax.random.split(ekey)
        order = jax.random.permutation(k_perm, num_seg).reshape(ppo.num_minibatches, mb_size)
        return jax.lax.scan(minibatch, c, (order, jax.random.split(k_drop, ppo.num_minibatches)))

    (params, opt_state), (terms, gnorm) = jax.lax.scan(
        epoch, (params, opt_state), jax.random.split(key, ppo.update_epochs)
    )
    mean_terms: LossTerms = jax.tree_util.tree_map(jnp.mean, terms)
    return params, opt_state, mean_terms, jnp.mean(gnorm)
