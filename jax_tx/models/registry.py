"""Which module implements each variant, in both twins (no jax or torch import).

jax_tx.models.<module> and torch_ref.models.<module> each provide make_core(cfg, ...) and
initial_memory(cfg, batch); the slot variant provides SlotPolicy.
"""

import importlib
from types import ModuleType

CORE_MODULES = {
    "gtrxl": "gtrxl",
    "trxl": "trxl",
    "trxl_nvidia": "trxl_nvidia",
    "agalite": "agalite",
    "agalite_fast": "agalite",
    "agalite_optimized": "agalite",
    "agalite_hybrid": "agalite",
    "sliding": "sliding",
    "lstm": "lstm",
    "gru": "gru",
    "slot": "slot",
    "mlp": "mlp",
}


def variant_module(variant: str, package: str) -> ModuleType:
    """The module of `variant` in `package` ("jax_tx" or "torch_ref")."""
    return importlib.import_module(f"{package}.models.{CORE_MODULES[variant]}")
