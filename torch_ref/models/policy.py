"""The actor-critic policy (twin of jax_tx/models/policy.py).

x = encoder(obs) [+ aux];  y, mem = core(x, reset, mem);  y = LN_final(y) (final_norm)
a = ReLU(W_a y + b) [then W_2 a + b, ... actor_layers Linears, ReLU between];  logits = W_pi a + b
value = W_v act(W_c y + b) + b,  act = tanh | relu
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import torch
from torch import nn

from jax_tx.config import PolicyConfig
from jax_tx.models.checks import check_memory_keys, check_memory_kinds, check_policy_inputs, check_token_values
from jax_tx.models.registry import variant_module as registry_variant_module
from torch_ref.models.encoders import make_encoder
from torch_ref.nn.common import apply_init, torch_dtype


def variant_module(variant: str) -> ModuleType:
    return registry_variant_module(variant, "torch_ref")


class PolicyOutput(NamedTuple):
    logits: Any
    value: Any


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def as_tensor(x, dtype=None):
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=dtype)


class Policy(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = make_encoder(cfg)
        if cfg.aux_tokens:
            from torch_ref.models.aux_tokens import AuxEmbedding

            self.aux = AuxEmbedding(cfg)
        self.core = variant_module(cfg.variant).make_core(cfg)
        if cfg.final_norm:
            self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.actor_fc = _orthogonal(nn.Linear(cfg.d_model, cfg.actor_hidden), math.sqrt(2))
        for i in range(2, cfg.actor_layers + 1):
            setattr(self, f"actor_fc{i}", _orthogonal(nn.Linear(cfg.actor_hidden, cfg.actor_hidden), math.sqrt(2)))
        self.actor_out = _orthogonal(nn.Linear(cfg.actor_hidden, cfg.num_actions), 0.01)
        self.critic_fc = _orthogonal(nn.Linear(cfg.d_model, cfg.critic_hidden), math.sqrt(2))
        self.critic_out = _orthogonal(nn.Linear(cfg.critic_hidden, 1), 1.0)

    def forward(self, obs, reset, memory, prev_action=None, prev_reward=None):
        """obs [B, T, obs_dim], reset [B, T] bool, memory -> (PolicyOutput, next memory)."""
        cfg = self.cfg
        dtype = torch_dtype(cfg)
        obs = as_tensor(obs)
        obs = obs if cfg.encoder == "tokens" else obs.to(dtype)
        reset = as_tensor(reset).to(torch.bool)
        prev_action = None if prev_action is None else as_tensor(prev_action)
        prev_reward = None if prev_reward is None else as_tensor(prev_reward)
        check_policy_inputs(
            cfg,
            obs.shape,
            reset.shape,
            [leaf.shape[0] for leaf in tree_leaves(memory)],
            None if prev_action is None else prev_action.shape,
            None if prev_reward is None else prev_reward.shape,
            obs_dtype=str(obs.dtype),
        )
        if cfg.encoder == "tokens":
            check_token_values(cfg, obs.cpu().numpy())
        template = variant_module(cfg.variant).initial_memory(cfg, 1)
        check_memory_keys(cfg.variant, list(template), list(memory))
        check_memory_kinds(cfg.variant, leaf_kinds(template), leaf_kinds(memory))
        x = self.encoder(obs)
        if cfg.aux_tokens:
            x = x + self.aux(reset, prev_action, prev_reward, x.dtype)
        aux = {"prev_action": prev_action, "prev_reward": prev_reward}
        y, memory = self.core(x, reset, memory, aux)
        if cfg.final_norm:
            y = self.final_norm(y)
        a = torch.relu(self.actor_fc(y))
        for i in range(2, cfg.actor_layers + 1):
            a = getattr(self, f"actor_fc{i}")(a)
            a = torch.relu(a) if i < cfg.actor_layers else a
        logits = self.actor_out(a)
        critic_act = torch.relu if cfg.critic_activation == "relu" else torch.tanh
        value = self.critic_out(critic_act(self.critic_fc(y)))[..., 0]
        return PolicyOutput(logits, value), memory


def leaf_kinds(tree, prefix: str = "") -> dict[str, str]:
    """{"['h']": "float" | "int" | "bool"} of a (nested) dict of tensors, paths spelled like jax's keystr."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in leaf_kinds(sub, f"{prefix}[{key!r}]").items()}
    if not isinstance(tree, torch.Tensor):
        return {}
    kind = "bool" if tree.dtype == torch.bool else "float" if tree.is_floating_point() else "int"
    return {prefix: kind}


def tree_leaves(tree) -> list:
    """Leaves of nested dicts/lists/tuples of tensors, in sorted-key order (as jax orders dicts)."""
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in tree_leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in tree_leaves(item)]
    return [tree]


def make_policy(cfg: PolicyConfig) -> nn.Module:
    """The torch twin of cfg.variant, in eval mode (call .train() for dropout); cfg.init applied."""
    if cfg.variant == "slot":
        model = variant_module("slot").SlotPolicy(cfg)
    else:
        model = Policy(cfg)
    return apply_init(cfg, model).to(torch_dtype(cfg)).eval()


def initial_memory(cfg: PolicyConfig, batch: int):
    return variant_module(cfg.variant).initial_memory(cfg, batch)
