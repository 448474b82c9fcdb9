"""PyTorch twins of jax_tx/ppo/advantages.py, loss.py and the optimizer step of update.py.

Same equations, same order (see the JAX docstrings); time-major [T, B] tensors.

    next_value_t = 0 if term_t; V(final_obs_t) if trunc_t; V_{t+1} (V_T = last_value) otherwise
    A_t = rho_t (r_t + gamma next_value_t - V_t) + gamma lambda c_t (1 - done_t) A_{t+1}
    L   = L_pg + vf_coef L_v - ent_coef H
    factored heads (jax_tx/ppo/heads.py): masked logits -> -1e9; log pi(a) = sum_k log pi_k(a_k), H = sum_k H_k
    step: g <- g * min(1, max_norm / ||g||) (optax clip_by_global_norm form), then Adam / AdamW
"""

from __future__ import annotations

import torch

from jax_tx.config import PPOConfig


def bootstrap_values(values, last_value, truncated_values, terminated, truncated):
    following = torch.cat([values[1:], last_value[None]], dim=0)
    following = torch.where(truncated, truncated_values, following)
    return torch.where(terminated, torch.zeros_like(following), following)


def gae(rewards, values, next_values, done, gamma, lam, ratio=None, rho_clip=None, c_clip=None, tail=None):
    if ratio is None:
        rho = c = torch.ones_like(rewards)
    else:
        rho = torch.clamp(ratio, max=rho_clip)
        c = torch.clamp(ratio, max=c_clip)
    acc = torch.zeros_like(rewards[0]) if tail is None else tail
    out = torch.empty_like(rewards)
    not_done = 1.0 - done.to(rewards.dtype)
    for t in reversed(range(rewards.shape[0])):
        delta = rho[t] * (rewards[t] + gamma * next_values[t] - values[t])
        acc = delta + gamma * lam * c[t] * not_done[t] * acc
        out[t] = acc
    return out


def log_prob_entropy(logits, actions):
    logp_all = torch.log_softmax(logits.float(), dim=-1)
    logp = torch.gather(logp_all, -1, actions.long()[..., None])[..., 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


MASKED_LOGIT = -1e9


def factored_log_prob_entropy(logits, actions, mask=None):
    """K heads [..., A_k], actions [..., K] (or one head, actions [...]), mask bool[..., sum A_k] or None:
    (summed log pi(a), summed entropy, per-head entropies)."""
    heads = [h.float() for h in (logits if isinstance(logits, (tuple, list)) else (logits,))]
    if mask is not None and mask.shape[-1] > 0:
        masks = torch.split(mask, [h.shape[-1] for h in heads], dim=-1)
        heads = [torch.where(m, h, torch.full_like(h, MASKED_LOGIT)) for h, m in zip(heads, masks, strict=True)]
    acts = [actions] if len(heads) == 1 and actions.dim() == heads[0].dim() - 1 else actions.unbind(-1)
    logps, ents = [], []
    for h, a in zip(heads, acts, strict=True):
        lp, ent = log_prob_entropy(h, a)
        logps.append(lp)
        ents.append(ent)
    return sum(logps[1:], logps[0]), sum(ents[1:], ents[0]), ents


def normalize(x, eps: float = 1e-8):
    # jnp.std is the population std (ddof=0)
    return (x - x.mean()) / (x.std(unbiased=False) + eps)


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
    vf_coef,
    norm_adv=True,
    clip_vloss=True,
    mask=None,
) -> dict[str, torch.Tensor]:
    factored = isinstance(logits, (tuple, list))
    if factored or (mask is not None and mask.shape[-1] > 0):
        logp, entropy, per_head = factored_log_prob_entropy(logits, actions, mask)
    else:
        logp, entropy = log_prob_entropy(logits, actions)
    values = values.float()
    logratio = torch.clamp(logp - old_logp, -10.0, 10.0)
    ratio = logratio.exp()
    adv = normalize(advantages) if norm_adv else advantages
    pg = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)).mean()
    if clip_vloss:
        clipped = old_values + torch.clamp(values - old_values, -vf_clip_coef, vf_clip_coef)
        v_loss = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((values - returns) ** 2).mean()
    ent = entropy.mean()
    return {
        "total": pg + vf_coef * v_loss - ent_coef * ent,
        "policy_loss": pg,
        "value_loss": v_loss,
        "entropy": ent,
        "approx_kl": ((ratio - 1.0) - logratio).mean(),
        "clipfrac": ((ratio - 1.0).abs() > clip_coef).float().mean(),
        "head_entropy": [h.mean() for h in per_head] if factored else [],
    }


def make_optimizer(params, ppo: PPOConfig, lr: float) -> torch.optim.Optimizer:
    betas = (ppo.adam_b1, ppo.adam_b2)
    if ppo.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=ppo.adam_eps, weight_decay=ppo.weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=ppo.adam_eps)


def clip_by_global_norm_(params, max_norm: float) -> torch.Tensor:
    """Scale grads by max_norm / ||g|| when ||g|| >= max_norm (optax's form, no epsilon)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).to(grads[0].dtype)
    if norm >= max_norm:
        for g in grads:
            g.mul_(max_norm / norm)
    return norm


def sgd_step(model, optimizer, loss: torch.Tensor, max_norm: float) -> torch.Tensor:
    optimizer.zero_grad()
    loss.backward()
    norm = clip_by_global_norm_([p for p in model.parameters()], max_norm)
    optimizer.step()
    return norm
