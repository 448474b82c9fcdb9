"""Single-layer LSTM in torch's nn.LSTM parameter layout, scanned over time with resets.

    [i; f; g; o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh        (gate order i, f, g, o)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(c_t)
(h, c) are zeroed before step t where reset[b, t]. Parameters keep torch's names and
[4H, in] layout (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0) so conversion
copies them as they are; the forget block of b_ih starts at cfg.lstm_forget_bias (default 1), the rest of
b_ih and b_hh at 0.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import param_dtype, state_dtype


def uniform_init(bound: float):
    """Initialiser drawing every entry uniformly from [-bound, bound] (torch nn.LSTM / nn.GRU weights: 1/sqrt(H))."""
    return lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound)


def gate_bias_init(block: int, blocks: int, value: float):
    """Initialiser of a gate bias b [blocks * H]: b[block * H : (block + 1) * H] = value, every other entry 0
    (block 1 of 4 = the LSTM forget gate f, block 1 of 3 = the GRU update gate z)."""

    def init(key, shape, dtype):
        hidden = shape[0] // blocks
        return jnp.zeros(shape, dtype).at[block * hidden : (block + 1) * hidden].set(value)

    return init


class LSTM(nn.Module):
    cfg: PolicyConfig
    features: int

    @nn.compact
    def __call__(self, x, reset, state):
        """x [B, T, I], reset [B, T], state {"h", "c": [B, H]} -> (y [B, T, H], state)."""
        hdim, pdt = self.features, param_dtype(self.cfg)
        bound = hdim**-0.5
        w_ih = self.param("weight_ih_l0", uniform_init(bound), (4 * hdim, x.shape[-1]), pdt)
        w_hh = self.param("weight_hh_l0", uniform_init(bound), (4 * hdim, hdim), pdt)
        b_ih = self.param("bias_ih_l0", gate_bias_init(1, 4, self.cfg.lstm_forget_bias), (4 * hdim,), pdt)
        b_hh = self.param("bias_hh_l0", nn.initializers.zeros, (4 * hdim,), pdt)
        x_proj = jnp.einsum("bti,gi->btg", x, w_ih.astype(x.dtype)) + b_ih.astype(x.dtype)  # [B, T, 4H]

        def step(carry, inputs):
            h, c = carry
            xp, r = inputs
            keep = (~r)[:, None].astype(h.dtype)
            h, c = h * keep, c * keep
            gates = xp.astype(h.dtype) + h @ w_hh.T.astype(h.dtype) + b_hh.astype(h.dtype)
            i, f, g, o = jnp.split(gates, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        sdt = state_dtype(self.cfg)
        (h, c), ys = jax.lax.scan(
            step, (state["h"].astype(sdt), state["c"].astype(sdt)), (jnp.swapaxes(x_proj, 0, 1), reset.T)
        )
        return jnp.swapaxes(ys, 0, 1).astype(x.dtype), jax.lax.stop_gradient({"h": h, "c": c})


def lstm_initial_state(cfg: PolicyConfig, batch: int, features: int) -> dict:
    return {"h": jnp.zeros((batch, features), state_dtype(cfg)), "c": jnp.zeros((batch, features), state_dtype(cfg))}
