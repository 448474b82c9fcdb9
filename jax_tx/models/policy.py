"""The actor-critic policy: observation encoder -> memory core -> actor and critic heads.

    x      = encoder(obs)                                 [B, T, D]  (mlp: ReLU(W_enc obs + b); tokens: Perceiver)
    x     += AuxEmbedding(reset, prev_action, prev_reward)   (aux_tokens only)
    y, mem = core(x, reset, mem)                          variant's backbone
    y      = LN_final(y)                                  (final_norm only)
    a      = ReLU(W_a y + b), then W_2 a + b, ... (ReLU between, none after the last; actor_layers Linears)
    logits = W_pi a + b                                   [B, T, A]   (Metta's heads)
    value  = W_v act(W_c y + b) + b                       [B, T]      act = tanh | relu (critic_activation)

`make_policy(cfg)` returns the flax module; `initial_memory(cfg, batch)` its memory.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.config import PolicyConfig
from jax_tx.models.checks import check_memory_keys, check_memory_kinds, check_policy_inputs, check_token_values
from jax_tx.models.encoders import encode, example_obs
from jax_tx.models.registry import variant_module as registry_variant_module
from jax_tx.nn.common import compute_dtype, dense, param_dtype, state_dtype


def variant_module(variant: str) -> ModuleType:
    return registry_variant_module(variant, "jax_tx")


class PolicyOutput(NamedTuple):
    logits: Any
    value: Any


def orthogonal(gain: float):
    return nn.initializers.orthogonal(scale=gain)


class Policy(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, obs, reset, memory, prev_action=None, prev_reward=None, deterministic: bool = True):
        """obs [B, T, obs_dim] (tokens: uint8 [B, T, obs_dim, 3]), reset [B, T] bool, memory -> (out, memory)."""
        cfg = self.cfg
        check_policy_inputs(
            cfg,
            obs.shape,
            jnp.shape(reset),
            [leaf.shape[0] for leaf in jax.tree_util.tree_leaves(memory)],
            None if prev_action is None else jnp.shape(prev_action),
            None if prev_reward is None else jnp.shape(prev_reward),
            obs_dtype=str(obs.dtype),
        )
        if cfg.encoder == "tokens" and not isinstance(obs, jax.core.Tracer):
            check_token_values(cfg, np.asarray(obs))
        module = variant_module(cfg.variant)
        template = jax.eval_shape(lambda: module.initial_memory(cfg, 1))
        check_memory_keys(cfg.variant, list(template), list(memory))
        check_memory_kinds(cfg.variant, leaf_kinds(template), leaf_kinds(memory))
        reset = jnp.asarray(reset).astype(bool)
        x = encode(cfg, obs, "encoder")
        if cfg.aux_tokens:
            from jax_tx.models.aux_tokens import AuxEmbedding

            x = x + AuxEmbedding(cfg, name="aux")(reset, prev_action, prev_reward, x.dtype)
        aux = {"prev_action": prev_action, "prev_reward": prev_reward}
        y, memory = module.make_core(cfg, "core")(x, reset, memory, aux, deterministic)
        out_dtype = state_dtype(cfg)
        if cfg.final_norm:
            norm = nn.LayerNorm(
                epsilon=cfg.layer_norm_eps, dtype=compute_dtype(cfg), param_dtype=param_dtype(cfg), name="final_norm"
            )
            y = norm(y)
        a = nn.relu(dense(cfg, cfg.actor_hidden, "actor_fc", kernel_init=orthogonal(math.sqrt(2)))(y))
        for i in range(2, cfg.actor_layers + 1):
            a = dense(cfg, cfg.actor_hidden, f"actor_fc{i}", kernel_init=orthogonal(math.sqrt(2)))(a)
            a = nn.relu(a) if i < cfg.actor_layers else a
        logits = dense(cfg, cfg.num_actions, "actor_out", kernel_init=orthogonal(0.01))(a)
        critic_act = nn.relu if cfg.critic_activation == "relu" else jnp.tanh
        c = critic_act(dense(cfg, cfg.critic_hidden, "critic_fc", kernel_init=orthogonal(math.sqrt(2)))(y))
        value = dense(cfg, 1, "critic_out", kernel_init=orthogonal(1.0))(c)[..., 0]
        return PolicyOutput(logits.astype(out_dtype), value.astype(out_dtype)), memory


def leaf_kinds(tree) -> dict[str, str]:
    """{leaf path: "float" | "int" | "bool"} of a pytree of arrays (or shape/dtype structs)."""

    def kind(x) -> str:
        dtype = jnp.dtype(x.dtype)
        return "bool" if dtype == jnp.bool_ else "float" if jnp.issubdtype(dtype, jnp.inexact) else "int"

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): kind(x) for p, x in leaves if hasattr(x, "dtype")}


def make_policy(cfg: PolicyConfig) -> nn.Module:
    """The flax module of cfg.variant: apply(params, obs, reset, memory) -> (out, memory)."""
    if cfg.variant == "slot":
        return variant_module("slot").SlotPolicy(cfg)
    return Policy(cfg)


def initial_memory(cfg: PolicyConfig, batch: int):
    """Fresh memory for `batch` rows: a pytree whose leaves all have batch as axis 0."""
    return variant_module(cfg.variant).initial_memory(cfg, batch)


def example_inputs(cfg: PolicyConfig, batch: int = 1, steps: int = 1):
    """Zero inputs of the right shapes, e.g. for model.init or jax.eval_shape."""
    obs = example_obs(cfg, batch, steps, state_dtype(cfg))
    reset = jnp.zeros((batch, steps), bool)
    return obs, reset, initial_memory(cfg, batch)
