"""Residual combiners g(x, y): x is the residual stream, y the sublayer output.

GRU gate (Parisotto et al. 2019, six bias-free matrices, learnable b_g):
    r = sigmoid(W_r y + U_r x)
    z = sigmoid(W_z y + U_z x - b_g)
    h = tanh(W_g y + U_g (r * x))
    g = (1 - z) * x + z * h
The six matrices are applied as two matmuls, y [W_r | W_z | W_g] and x [U_r | U_z], plus U_g (r * x)
(the same parameters and values; fewer, larger kernels).
Fused gate (Metta's FusedGRUGating, one matrix on [x ; y]):
    [a_r; a_z; a_h] = W [x ; y];  r = sigmoid(a_r);  z = sigmoid(a_z - b_g)
    g = (1 - z) * x + z * tanh(a_h * r)
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import compute_dtype, dense, dense_kernel, matmul, param_dtype


class GRUGate(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
        d = self.cfg.d_model
        w = {n: dense_kernel(self.cfg, d, d, n) for n in ("w_r", "u_r", "w_z", "u_z", "w_g", "u_g")}
        bg = self.param("bg", nn.initializers.constant(self.cfg.gate_bias), (d,), param_dtype(self.cfg))
        x, y, bg, *ws = nn.dtypes.promote_dtype(x, y, bg, *w.values(), dtype=compute_dtype(self.cfg))
        w = dict(zip(w, ws, strict=True))
        wy = matmul(y, jnp.concatenate([w["w_r"], w["w_z"], w["w_g"]], axis=1))  # [..., 3D]
        ux = matmul(x, jnp.concatenate([w["u_r"], w["u_z"]], axis=1))  # [..., 2D]
        r = nn.sigmoid(wy[..., :d] + ux[..., :d])
        z = nn.sigmoid(wy[..., d : 2 * d] + ux[..., d:] - bg)
        h = jnp.tanh(wy[..., 2 * d :] + matmul(r * x, w["u_g"]))
        return (1.0 - z) * x + z * h


class FusedGRUGate(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
        d = self.cfg.d_model
        bg = self.param("bg", nn.initializers.constant(self.cfg.gate_bias), (d,), param_dtype(self.cfg))
        a_r, a_z, a_h = jnp.split(
            dense(self.cfg, 3 * d, "gate_proj", use_bias=False)(jnp.concatenate([x, y], -1)), 3, -1
        )
        r = nn.sigmoid(a_r)
        z = nn.sigmoid(a_z - bg.astype(x.dtype))
        return (1.0 - z) * x + z * jnp.tanh(a_h * r)


def make_gate(cfg: PolicyConfig, name: str, gating: str | None = None) -> nn.Module:
    """The gate module for `gating` (default cfg.gating); 'none' has no module: see combine."""
    gating = cfg.gating if gating is None else gating
    if gating == "gru":
        return GRUGate(cfg, name=name)
    if gating == "fused_gru":
        return FusedGRUGate(cfg, name=name)
    raise ValueError(f"gating={gating!r} has no gate module")


def combine(cfg: PolicyConfig, name: str, x: jnp.ndarray, y: jnp.ndarray, gating: str | None = None) -> jnp.ndarray:
    """g(x, y) = x + y for gating 'none', else the named gate's g(x, y); gating defaults to cfg.gating."""
    gating = cfg.gating if gating is None else gating
    return x + y if gating == "none" else make_gate(cfg, name, gating)(x, y)
