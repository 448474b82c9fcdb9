"""Which module implements each variant, in both twins (no jax or torch import).

jax_tx.<module> and torch_ref.<module> each provide make_core(cfg, ...) and
initial_memory(cfg, batch); the slot variant provides SlotPolicy.
"""

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
    "slot": "slot",
    "mlp": "mlp",
}
