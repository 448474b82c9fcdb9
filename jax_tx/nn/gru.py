"""Single-layer GRU in torch's nn.GRU parameter layout, scanned over time with resets.

    [a_r; a_z; a_n] = W_ih x_t + b_ih                              (gate order r, z, n)
    [u_r; u_z; u_n] = W_hh h_{t-1} + b_hh
    r = sigmoid(a_r + u_r),   z = sigmoid(a_z + u_z)
    n = tanh(a_n + r * u_n)
    h_t = (1 - z) * n + z * h_{t-1}
h is zeroed before step t where reset[b, t]. Parameters keep torch's names and [3H, in] layout
(weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0) so conversion copies them as they are;
weights start uniform in +-1/sqrt(H) (torch's nn.GRU init); the z block of b_ih starts at
cfg.gru_update_bias (default 0), the rest of b_ih and b_hh at 0.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import param_dtype, state_dtype
from jax_tx.nn.lstm import gate_bias_init, uniform_init


def gru_cell(x_proj: jnp.ndarray, h: jnp.ndarray, w_hh: jnp.ndarray, b_hh: jnp.ndarray) -> jnp.ndarray:
    """One GRU step from the input projection x_proj = W_ih x + b_ih [B, 3H] and h [B, H] -> h' [B, H].

    u = h W_hh^T + b_hh; r, z = sigmoid(x_proj[r|z] + u[r|z]); n = tanh(x_proj[n] + r u[n]);
    h' = (1 - z) n + z h.
    """
    a_r, a_z, a_n = jnp.split(x_proj, 3, axis=-1)
    u_r, u_z, u_n = jnp.split(h @ w_hh.T + b_hh, 3, axis=-1)
    r = jax.nn.sigmoid(a_r + u_r)
    z = jax.nn.sigmoid(a_z + u_z)
    n = jnp.tanh(a_n + r * u_n)
    return (1.0 - z) * n + z * h


class GRU(nn.Module):
    cfg: PolicyConfig
    features: int

    @nn.compact
    def __call__(self, x, reset, state):
        """x [B, T, I], reset [B, T], state {"h": [B, H]} -> (y [B, T, H], state)."""
        hdim, pdt = self.features, param_dtype(self.cfg)
        bound = hdim**-0.5
        w_ih = self.param("weight_ih_l0", uniform_init(bound), (3 * hdim, x.shape[-1]), pdt)
        w_hh = self.param("weight_hh_l0", uniform_init(bound), (3 * hdim, hdim), pdt)
        b_ih = self.param("bias_ih_l0", gate_bias_init(1, 3, self.cfg.gru_update_bias), (3 * hdim,), pdt)
        b_hh = self.param("bias_hh_l0", nn.initializers.zeros, (3 * hdim,), pdt)
        x_proj = jnp.einsum("bti,gi->btg", x, w_ih.astype(x.dtype)) + b_ih.astype(x.dtype)  # [B, T, 3H], all T at once

        def step(h, inputs):
            xp, r = inputs
            h = h * (~r)[:, None].astype(h.dtype)
            h = gru_cell(xp.astype(h.dtype), h, w_hh.astype(h.dtype), b_hh.astype(h.dtype))
            return h, h

        h0 = state["h"].astype(state_dtype(self.cfg))
        h, ys = jax.lax.scan(step, h0, (jnp.swapaxes(x_proj, 0, 1), reset.T))
        return jnp.swapaxes(ys, 0, 1).astype(x.dtype), jax.lax.stop_gradient({"h": h})
