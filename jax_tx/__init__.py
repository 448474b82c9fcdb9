"""jax_tx: memory-transformer RL policies in JAX/Flax, with PyTorch twins in torch_ref.

    from jax_tx import config
    cfg = config.preset("trxl", obs_dim=12, num_actions=5)
    model = jax_tx.make_policy(cfg); mem = jax_tx.initial_memory(cfg, batch)

Attributes are loaded lazily so that `from jax_tx import config` does not import jax.
"""

from __future__ import annotations

import importlib

__all__ = ["config", "make_policy", "initial_memory", "PolicyOutput", "convert", "checkpoint"]

_LAZY = {
    "make_policy": ("jax_tx.policy", "make_policy"),
    "initial_memory": ("jax_tx.policy", "initial_memory"),
    "PolicyOutput": ("jax_tx.policy", "PolicyOutput"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in ("config", "convert", "checkpoint", "policy"):
        return importlib.import_module(f"jax_tx.{name}")
    raise AttributeError(f"module 'jax_tx' has no attribute {name!r}")
