"""torch_ref: PyTorch twins of the jax_tx policies (same config, same parameter tree,
same memory semantics). Never imports jax.

    tmodel = torch_ref.make_policy(cfg); tmem = torch_ref.initial_memory(cfg, batch)
    out, tmem = tmodel(obs, reset, tmem)
"""

from torch_ref.models.policy import PolicyOutput, initial_memory, make_policy

__all__ = ["PolicyOutput", "initial_memory", "make_policy"]
