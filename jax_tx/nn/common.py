"""Dtype policy and the two layer factories every module uses.

Parameters are float32 (float64 in float64 parity runs); computation runs in
`cfg.dtype`. LayerNorm epsilon is always passed explicitly (flax defaults to 1e-6,
torch to 1e-5). Under cfg.init="orthogonal" every kernel made here is orthogonal with the gain
`jax_tx.config.orthogonal_gain(name)` (jax_tx/config/init_scheme.py), whatever the caller asked for.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_tx.config import PolicyConfig, orthogonal_gain


def compute_dtype(cfg: PolicyConfig):
    """dtype for activations; None lets flax promote inputs and params (float32/float64)."""
    return jnp.bfloat16 if cfg.dtype == "bfloat16" else None


def param_dtype(cfg: PolicyConfig):
    return jnp.float64 if cfg.dtype == "float64" else jnp.float32


def state_dtype(cfg: PolicyConfig):
    """dtype of recurrent memory leaves (kept in full precision under bfloat16)."""
    return jnp.float64 if cfg.dtype == "float64" else jnp.float32


def _contract_last(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """y[..., o] = sum_i x[..., i] w[i, o] (the dot_general flax's Dense uses)."""
    return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))


@jax.custom_vjp
def matmul(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """y = x w for x [..., I], w [I, O], with a backward pass XLA's CPU backend runs fast.

    Backward (the same values as autodiff): dx = g w^T; dw = X^T G with X = x as [N, I], G = g as
    [N, O], and X^T materialised (an optimization barrier keeps XLA from folding the transpose into
    the dot, which sends it to a slow transposed-operand matmul on CPU; other backends get the plain dot).
    """
    return _contract_last(x, w)


def _matmul_fwd(x, w):
    return _contract_last(x, w), (x, w)


def _matmul_bwd(res, g):
    x, w = res
    dx = _contract_last(g, w.T)
    xt = x.reshape(-1, x.shape[-1]).T  # [I, N]
    if jax.default_backend() == "cpu":
        xt = jax.lax.optimization_barrier(xt)
    dw = jnp.dot(xt, g.reshape(-1, g.shape[-1]))
    return dx.astype(x.dtype), dw.astype(w.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


class Dense(nn.Module):
    """flax.linen.Dense's parameters (kernel [I, O] lecun-normal, bias [O] zeros) and forward values,
    through `matmul` (a custom VJP). Inputs, kernel and bias are promoted to `dtype` (or their common dtype)."""

    features: int
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel = self.param("kernel", self.kernel_init, (jnp.shape(x)[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = matmul(x, kernel)
        return y if bias is None else y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))


class Kernel(nn.Module):
    """Only the kernel [I, O] of a bias-free Dense layer (parameter `name/kernel`, as Dense names it), so that
    callers can fuse several layers' matmuls or apply a column block to a subset of rows."""

    in_features: int
    features: int
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self) -> jnp.ndarray:
        return self.param("kernel", self.kernel_init, (self.in_features, self.features), self.param_dtype)


def kernel_init_of(cfg: PolicyConfig, name: str, kernel_init=None):
    """The initialiser of layer `name`'s kernel: orthogonal(g = orthogonal_gain(name)) under
    cfg.init="orthogonal"; otherwise `kernel_init` (None: the layer's lecun-normal default)."""
    if cfg.init == "orthogonal":
        return nn.initializers.orthogonal(scale=orthogonal_gain(name))
    return kernel_init


def dense_kernel(cfg: PolicyConfig, in_features: int, features: int, name: str) -> jnp.ndarray:
    """The kernel [I, O] of `dense(cfg, features, name, use_bias=False)` applied to inputs of width I."""
    init = kernel_init_of(cfg, name)
    kwargs = {} if init is None else {"kernel_init": init}
    return Kernel(in_features, features, param_dtype(cfg), name=name, **kwargs)()


def dense(
    cfg: PolicyConfig, features: int, name: str, use_bias: bool = True, kernel_init=None, bias_init=None
) -> nn.Module:
    """A Dense layer (flax.linen.Dense's parameters and values) whose weight gradient is a plain matmul.
    Its bias starts at `bias_init` (None: 0) under every init scheme; its kernel init is
    `kernel_init_of(cfg, name, kernel_init)`."""
    kernel_init = kernel_init_of(cfg, name, kernel_init)
    kwargs = {} if kernel_init is None else {"kernel_init": kernel_init}
    if bias_init is not None:
        kwargs["bias_init"] = bias_init
    return Dense(
        features, use_bias=use_bias, dtype=compute_dtype(cfg), param_dtype=param_dtype(cfg), name=name, **kwargs
    )


def layer_norm(cfg: PolicyConfig, name: str) -> nn.LayerNorm:
    """LayerNorm of the core: eps cfg.layer_norm_eps, a bias unless norm_bias=False (Cortex)."""
    return nn.LayerNorm(
        epsilon=cfg.layer_norm_eps,
        dtype=compute_dtype(cfg),
        param_dtype=param_dtype(cfg),
        use_bias=cfg.norm_bias,
        name=name,
    )
