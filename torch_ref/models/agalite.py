"""AGaLiTe memory core (twin of jax_tx/agalite.py; the equations are in that module's docstring).

    psi(k) = vec(f(k) x f(p1)),  phi(q) = vec(f(q) x f(p2)),  gamma = vec(s(g) x s(p3)),  beta = s(b)
    f = relu, or elu + 1 (cfg.agalite_kernel "eluplus1")
    (the b and g blocks of the kqvbg bias start at cfg.agalite_gate_bias, the rest at 0)
    K~_t[j] = (1-gamma_t)(1-reset_t) K~_{t-1}[j] + cos(omega_j n_t) gamma_t psi(k_t)
    V~_t[j] = (1-beta_t)(1-reset_t) V~_{t-1}[j] + cos(omega_j n_t) beta_t v_t
    s_t     = (1-gamma_t)(1-reset_t) s_{t-1} + gamma_t psi(k_t)
    o_t = sum_j V~_t[j] <K~_t[j], phi(q_t)> / (2R <s_t, phi(q_t)> + eps)      (fast: score summed over heads,
                                                                             denominator 2R max(<s, phi>, eps))
Standard layer: g1 = GRU1(x, relu(attn(LN1 x))), y = GRU2(g1, relu(FF(LN2 g1))).  Fast layer: y = x + attn(x).
Hybrid: an LSTM on top of the stack (then Linear lstm_width -> d_model if they differ).
The discounted sums run as a plain loop over T. The step counter is int32 modulo the period 2(R-1) of the
oscillators and the cosine is a table lookup, so the phase is exact at any episode length.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from jax_tx.config import PolicyConfig
from torch_ref.nn.common import layer_norm, torch_dtype
from torch_ref.nn.feedforward import FeedForward
from torch_ref.nn.gating import combine, make_gate
from torch_ref.nn.lstm import LSTM, lstm_initial_state

GATE_CLAMP = (0.05, 0.95)
OUTPUT_CLAMP = 10.0


def oscillator_fractions(r: int) -> tuple[np.ndarray, int]:
    """(m [R] int, N): omega_j = linspace(-pi, pi, R)_j = pi m_j / N exactly; the period in n is 2N."""
    if r == 1:
        return np.array([-1], np.int64), 1
    return 2 * np.arange(r, dtype=np.int64) - (r - 1), r - 1


def oscillator_period(r: int) -> int:
    return 2 * oscillator_fractions(r)[1]


def oscillators(n: torch.Tensor, r: int, dtype: torch.dtype) -> torch.Tensor:
    """c[..., j] = cos(omega_j n) for integer n, exact: table cos(pi k / N) at k = (n m_j) mod 2N."""
    m, big_n = oscillator_fractions(r)
    period = 2 * big_n
    table = torch.as_tensor(np.cos(np.pi * np.arange(period) / big_n), dtype=dtype)
    k = torch.remainder(torch.remainder(n.long(), period)[..., None] * torch.as_tensor(m), period)
    return table[k]


def outer_flat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """vec(a x b) over the last axes: [..., D], [..., eta] -> [..., D * eta] (index d * eta + e)."""
    return (a[..., :, None] * b[..., None, :]).flatten(-2)


def feature_activation(cfg: PolicyConfig):
    """f of the feature maps: relu(x), or elu(x) + 1 (cfg.agalite_kernel "eluplus1")."""
    return torch.relu if cfg.agalite_kernel == "relu" else (lambda x: F.elu(x) + 1.0)


def feature_maps(cfg: PolicyConfig, kqvbg: torch.Tensor, p: torch.Tensor):
    """kqvbg [B, T, H, 5, D], p [B, T, H, 3, eta] -> psi(k), phi(q), v, beta, gamma."""
    k, q, v, b, g = kqvbg.unbind(-2)
    p1, p2, p3 = p.unbind(-2)
    beta, gate = torch.sigmoid(b), torch.sigmoid(g)
    if cfg.clamp_gates:
        beta, gate = beta.clamp(*GATE_CLAMP), gate.clamp(*GATE_CLAMP)
    f = feature_activation(cfg)
    psi = outer_flat(f(k), f(p1))
    phi = outer_flat(f(q), f(p2))
    gamma = outer_flat(gate, torch.sigmoid(p3))
    return psi, phi, v, beta, gamma


def read_out(cfg: PolicyConfig, keys, values, norm, phi) -> torch.Tensor:
    """keys [B,T,R,H,E], values [B,T,R,H,D], norm [B,T,H,E], phi [B,T,H,E] -> o [B,T,H,D]."""
    r = cfg.num_oscillators
    if cfg.agalite_mode == "fast":
        score = torch.einsum("btrhe,bthe->btr", keys, phi)
        num = torch.einsum("btrhd,btr->bthd", values, score)
        den = 2 * r * torch.einsum("bthe,bthe->bth", norm, phi).clamp(min=cfg.agalite_eps)
    else:
        score = torch.einsum("btrhe,bthe->btrh", keys, phi)
        num = torch.einsum("btrhd,btrh->bthd", values, score)
        den = 2 * r * torch.einsum("bthe,bthe->bth", norm, phi) + cfg.agalite_eps
    out = num / den[..., None]
    return out.clamp(-OUTPUT_CLAMP, OUTPUT_CLAMP) if cfg.clamp_output else out


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class AGaLiTeAttention(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        d, nh, dh, eta = cfg.d_model, cfg.num_heads, cfg.head_dim, cfg.eta
        if cfg.agalite_mode == "fast":
            self.kqvbgp = _orthogonal(nn.Linear(d, 5 * nh * dh + 3 * nh * eta), math.sqrt(2))
        else:
            self.kqvbg = _orthogonal(nn.Linear(d, 5 * nh * dh), math.sqrt(2))
            self.p = _orthogonal(nn.Linear(d, 3 * nh * eta), math.sqrt(2))
        self.proj = _orthogonal(nn.Linear(nh * dh, d), 1.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.init_gate_biases()

    @torch.no_grad()
    def init_gate_biases(self) -> None:
        """Blocks 3 (beta) and 4 (gamma) of every head in the first 5 H D bias entries (layout [H, 5, D]) of kqvbg
        (fast: kqvbgp) = cfg.agalite_gate_bias; apply_init calls it again after zeroing the Linear biases."""
        cfg = self.cfg
        nh, dh = cfg.num_heads, cfg.head_dim
        layer = self.kqvbgp if cfg.agalite_mode == "fast" else self.kqvbg
        layer.bias[: 5 * nh * dh].view(nh, 5, dh)[:, 3:5] = cfg.agalite_gate_bias

    def forward(self, a, reset, state):
        """a [B, T, Dm], reset [B, T] bool, state (one layer's memory) -> (attn [B, T, Dm], next state)."""
        cfg = self.cfg
        bsz, steps = a.shape[:2]
        nh, dh, eta, r = cfg.num_heads, cfg.head_dim, cfg.eta, cfg.num_oscillators
        if cfg.agalite_mode == "fast":
            kqvbg, p = self.kqvbgp(a).split([5 * nh * dh, 3 * nh * eta], dim=-1)
        else:
            kqvbg, p = self.kqvbg(a), self.p(a)
        psi, phi, v, beta, gamma = feature_maps(cfg, kqvbg.view(bsz, steps, nh, 5, dh), p.view(bsz, steps, nh, 3, eta))
        k_in, v_in = gamma * psi, beta * v
        keys, values, norm, tick = state["keys"], state["values"], state["norm"], state["tick"]
        period = oscillator_period(r)
        all_k, all_v, all_s = [], [], []
        for t in range(steps):
            fresh = reset[:, t]
            tick = torch.remainder(tick + 1, period)
            if cfg.agalite_tick == "jax_tx":  # cortex / official: resets do not restart the count
                tick = torch.where(fresh, torch.ones_like(tick), tick)
            cos = oscillators(tick, r, a.dtype)[:, :, None, None]  # [B, R, 1, 1]
            keep = (~fresh).to(a.dtype)[:, None, None]
            decay_g, decay_b = (1.0 - gamma[:, t]) * keep, (1.0 - beta[:, t]) * keep
            keys = decay_g[:, None] * keys + cos * k_in[:, t, None]
            values = decay_b[:, None] * values + cos * v_in[:, t, None]
            norm = decay_g * norm + k_in[:, t]
            all_k.append(keys)
            all_v.append(values)
            all_s.append(norm)
        stack = lambda xs: torch.stack(xs, dim=1)  # noqa: E731
        out = read_out(cfg, stack(all_k), stack(all_v), stack(all_s), phi).reshape(bsz, steps, nh * dh)
        y = self.drop(self.proj(out))
        nxt = {"keys": keys.detach(), "values": values.detach(), "norm": norm.detach(), "tick": tick}
        return y, nxt


class AGaLiTeLayer(nn.Module):
    """Standard: g1 = GRU1(x, relu(attn(LN1 x))), y = GRU2(g1, relu(FF(LN2 g1))) (relus only with sublayer_relu);
    agalite_gating none puts x + y for each GRU(x, y); agalite_ff False returns g1. Fast: y = x + attn(x), or
    x + attn(LN1 x) with agalite_fast_norm."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.attn = AGaLiTeAttention(cfg)
        if cfg.agalite_fast_norm or cfg.agalite_mode != "fast":  # validate() allows agalite_fast_norm in fast mode only
            self.norm1 = layer_norm(cfg)
        if cfg.agalite_mode != "fast":
            if cfg.agalite_ff:
                self.norm2 = layer_norm(cfg)
            gates = ("gate1", "gate2") if cfg.agalite_ff else ("gate1",)
            for name in gates if cfg.agalite_gating != "none" else ():  # gates before ff: that order fixes the init
                setattr(self, name, make_gate(cfg, cfg.agalite_gating))
            if cfg.agalite_ff:
                self.ff = FeedForward(cfg)

    def forward(self, x, reset, state):
        if self.cfg.agalite_mode == "fast":
            a, state = self.attn(self.norm1(x) if self.cfg.agalite_fast_norm else x, reset, state)
            return x + a, state
        act = torch.relu if self.cfg.sublayer_relu else (lambda y: y)
        a, state = self.attn(self.norm1(x), reset, state)
        g1 = combine(self, self.cfg.agalite_gating, "gate1", x, act(a))
        if not self.cfg.agalite_ff:
            return g1, state
        return combine(self, self.cfg.agalite_gating, "gate2", g1, act(self.ff(self.norm2(g1)))), state


class AGaLiTeCore(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList([AGaLiTeLayer(cfg) for _ in range(cfg.num_layers)])
        if cfg.variant == "agalite_hybrid":
            self.lstm = LSTM(cfg, cfg.d_model, cfg.lstm_width)
            if cfg.lstm_width != cfg.d_model:
                self.lstm_out = nn.Linear(cfg.lstm_width, cfg.d_model)

    def forward(self, x, reset, memory, aux):
        """x [B, T, Dm], reset [B, T] bool -> (y [B, T, Dm], next memory)."""
        cfg = self.cfg
        check_memory_shapes(cfg, memory, x.shape[0])
        h, layers = x, []
        for layer, state in zip(self.layers, memory["layers"], strict=True):
            h, state = layer(h, reset, state)
            layers.append(state)
        nxt = {"layers": layers}
        if cfg.variant == "agalite_hybrid":
            h, nxt["lstm"] = self.lstm(h, reset, memory["lstm"])
            if cfg.lstm_width != cfg.d_model:
                h = self.lstm_out(h)
        return h, nxt


def _layer_shapes(cfg: PolicyConfig, batch: int) -> dict[str, tuple[int, ...]]:
    r, nh, dh, e = cfg.num_oscillators, cfg.num_heads, cfg.head_dim, cfg.eta * cfg.head_dim
    return {"keys": (batch, r, nh, e), "values": (batch, r, nh, dh), "norm": (batch, nh, e), "tick": (batch,)}


def check_memory_shapes(cfg: PolicyConfig, memory, batch: int) -> None:
    """Raise ValueError naming the leaf whose shape does not fit cfg (eta, r, heads, layers)."""
    layers = memory["layers"]
    if len(layers) != cfg.num_layers:
        raise ValueError(
            f"memory['layers'] has {len(layers)} entries, config num_layers={cfg.num_layers}; "
            f"build it with initial_memory(cfg, {batch})"
        )
    want = _layer_shapes(cfg, batch)
    for i, layer in enumerate(layers):
        for key, shape in want.items():
            got = tuple(layer[key].shape)
            if got != shape:
                raise ValueError(
                    f"memory['layers'][{i}][{key!r}] has shape {got}, expected {shape} for num_oscillators="
                    f"{cfg.num_oscillators}, eta={cfg.eta}, num_heads={cfg.num_heads}, d_head={cfg.head_dim}; "
                    f"build it with initial_memory(cfg, {batch})"
                )


def initial_memory(cfg: PolicyConfig, batch: int) -> dict:
    dt = torch_dtype(cfg)
    shapes = _layer_shapes(cfg, batch)
    memory = {
        "layers": [
            {k: torch.zeros(s, dtype=torch.int32 if k == "tick" else dt) for k, s in shapes.items()}
            for _ in range(cfg.num_layers)
        ]
    }
    for layer in memory["layers"]:
        layer["tick"] += 1 if cfg.agalite_tick == "cortex" else 0  # Cortex's tick starts at 1
    if cfg.variant == "agalite_hybrid":
        memory["lstm"] = lstm_initial_state(cfg, batch, cfg.lstm_width)
    return memory


def make_core(cfg: PolicyConfig) -> nn.Module:
    return AGaLiTeCore(cfg)
