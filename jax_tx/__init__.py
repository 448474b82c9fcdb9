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
    "make_policy": ("jax_tx.models.policy", "make_policy"),
    "initial_memory": ("jax_tx.models.policy", "initial_memory"),
    "PolicyOutput": ("jax_tx.models.policy", "PolicyOutput"),
}

# Contract names for modules that live below the root (jax_tx.convert is jax_tx.io.convert).
_MODULES = {
    "config": "jax_tx.config",
    "convert": "jax_tx.io.convert",
    "checkpoint": "jax_tx.io.checkpoint",
    "policy": "jax_tx.models.policy",
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'jax_tx' has no attribute {name!r}")
