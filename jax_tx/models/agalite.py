"""AGaLiTe (Pramanik et al., TMLR 2024): approximate gated linear transformer as an RL memory core.

Attention, per head h (letters: B T, R oscillators, H heads, D = d_head, E = eta * D):
    [k, q, v, b, g] = W_kqvbg a + bias               each [B, T, H, D]   (order k, q, v, beta, gamma; the b and g
                                                     blocks of the bias start at cfg.agalite_gate_bias, the rest at 0)
    [p1, p2, p3]    = W_p a + bias                   each [B, T, H, eta]
    psi(k)  = vec(f(k) x f(p1)),  phi(q) = vec(f(q) x f(p2))      [B, T, H, E] (index d*eta + e)
              f = relu (agalite_kernel "relu", the paper's) or elu + 1 ("eluplus1", Metta's pre-Cortex default)
    gamma   = vec(sigmoid(g) x sigmoid(p3)),  beta = sigmoid(b)               [B, T, H, E], [B, T, H, D]
    c_t[j]  = cos(omega_j n_t),  omega = linspace(-pi, pi, R),  n_t = step of the episode (1 at its first step;
              agalite_tick "official": steps since fresh memory, from 1; "cortex": from 2; neither restarts at a reset)
    K~_t[j] = (1 - gamma_t)(1 - reset_t) K~_{t-1}[j] + c_t[j] gamma_t psi(k_t)        [B, R, H, E]
    V~_t[j] = (1 - beta_t)(1 - reset_t) V~_{t-1}[j] + c_t[j] beta_t v_t               [B, R, H, D]
    s_t     = (1 - gamma_t)(1 - reset_t) s_{t-1} + gamma_t psi(k_t)                    [B, H, E]
    o_t     = sum_j V~_t[j] <K~_t[j], phi(q_t)> / (2 R <s_t, phi(q_t)> + eps)         [B, T, H, D]
    attn    = Dropout(W_o vec_H(o) + b_o)
Standard layer (the official block):   g1 = GRU1(x, relu(attn(LN1(x))));  y = GRU2(g1, relu(FF(LN2(g1))))
Fast layer (Metta's FastAGaLiTeLayer): one fused projection for [k q v b g | p1 p2 p3]; the score sums over heads,
    o_t = sum_j V~_t[j] <K~_t[j], phi(q_t)>_{H,E} / (2 R max(<s_t, phi(q_t)>_E, eps));   y = x + attn(x)
    (agalite_fast_norm, not Metta's: y = x + attn(LN1 x))
Stability flags (Metta's guards, off unless a preset sets them): clamp_gates clips sigmoid(b) and sigmoid(g) to
[0.05, 0.95] before the outer product (Metta's second sigmoid on the clipped gamma is not reproduced);
clamp_output clips o to [-10, 10] before W_o (the fast presets set it; without it the fast read-out can blow up).
agalite_hybrid puts an LSTM (nn/lstm.py) on top of the stack (then Linear lstm_width -> d_model if they differ):
memory {"layers": [...], "lstm": {"h", "c"}}.
The policy encoder ReLU(W obs + b) plays the role of the official first-layer Dense + ReLU embedding.

Phase: omega_j = pi m_j / N with m_j = 2j - (R-1), N = R-1 (R = 1: m = -1, N = 1), so cos(omega_j n) has the
integer period P = 2N in n. The step counter `tick` is kept modulo P as int32 and the cosine is a lookup
cos(pi ((n m_j) mod P) / N) in a float64-built table: exact at any episode length (Metta's float32 tick is not
past 2^24 steps). Memory per layer (batch-first): keys [B, R, H, E], values [B, R, H, D], norm [B, H, E],
tick [B] int32 (the episode step count mod P; 0 = fresh).
Discounted sums run as one plain step (T = 1, rollout), a lax.scan for T <= SEQUENTIAL_MAX_STEPS on CPU (measured
faster there: the associative form materialises [B, T, R, H, E] tensors through many pads) or associative_scan.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.config import PolicyConfig
from jax_tx.nn.common import dense, layer_norm, state_dtype
from jax_tx.nn.feedforward import FeedForward
from jax_tx.nn.gating import combine
from jax_tx.nn.lstm import LSTM, lstm_initial_state

GATE_CLAMP = (0.05, 0.95)
SEQUENTIAL_MAX_STEPS = 256
"""method="auto" on CPU: lax.scan up to this many steps (about 2x faster than associative_scan at T = 16, 64 and 256,
experiments/bench_levers.py --crossover: no crossover up to 256), associative_scan beyond and on other backends."""
OUTPUT_CLAMP = 10.0


# --- oscillators with an exact phase ---------------------------------------------------------------------------


def oscillator_fractions(r: int) -> tuple[np.ndarray, int]:
    """(m [R] int, N): omega_j = linspace(-pi, pi, R)_j = pi m_j / N exactly; the period in n is 2N."""
    if r == 1:
        return np.array([-1], np.int64), 1
    return 2 * np.arange(r, dtype=np.int64) - (r - 1), r - 1


def oscillator_period(r: int) -> int:
    return 2 * oscillator_fractions(r)[1]


def oscillators(n, r: int, dtype) -> jnp.ndarray:
    """c[..., j] = cos(omega_j n) for integer steps n [...] (any size), exact: a table lookup at (n m_j) mod 2N."""
    m, big_n = oscillator_fractions(r)
    period = 2 * big_n
    table = jnp.asarray(np.cos(np.pi * np.arange(period) / big_n), dtype)  # cos(pi k / N), k = 0..P-1
    k = jnp.mod(jnp.mod(jnp.asarray(n), period)[..., None] * jnp.asarray(m, jnp.int32), period)
    return table[k]


def episode_steps(tick, reset, period: int, restart: bool = True) -> jnp.ndarray:
    """n [B, T] int32 mod P: 1 at a reset step, else the previous step's n + 1 (tick [B] = n before the chunk).

    restart=False (agalite_tick "cortex" / "official"): n = tick + t + 1, resets do not restart the count.
    """
    t = jnp.arange(reset.shape[1], dtype=jnp.int32)[None, :]
    if not restart:
        return jnp.mod(tick.astype(jnp.int32)[:, None] + t + 1, period)
    last_reset = jax.lax.cummax(jnp.where(reset, t, -1), axis=1)
    n = jnp.where(last_reset >= 0, t - last_reset + 1, tick.astype(jnp.int32)[:, None] + t + 1)
    return jnp.mod(n, period)


# --- discounted sums over time ---------------------------------------------------------------------------------


def discounted_sum(decay, x, init, method: str = "auto") -> jnp.ndarray:
    """h_t = decay_t * h_{t-1} + x_t over axis 1 (T), h_{-1} = init; returns h [B, T, ...].

    decay broadcasts against x. method: "associative" (parallel in T, operator
    (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2)), "sequential" (lax.scan), "step" (T = 1 only),
    "auto" (step for T = 1, sequential for T <= SEQUENTIAL_MAX_STEPS on CPU, else associative).
    """
    steps = x.shape[1]
    if method == "auto":
        short = steps <= SEQUENTIAL_MAX_STEPS and jax.default_backend() == "cpu"
        method = "step" if steps == 1 else "sequential" if short else "associative"
    if method == "step":
        if steps != 1:
            raise ValueError(f"discounted_sum method='step' needs T == 1, got T = {steps}")
        return (decay[:, 0] * init + x[:, 0])[:, None]
    if method == "associative":
        x = x.at[:, 0].add(decay[:, 0] * init)

        def combine(left, right):
            return left[0] * right[0], right[0] * left[1] + right[1]

        return jax.lax.associative_scan(combine, (decay, x), axis=1)[1]
    if method == "sequential":

        def step(h, inputs):
            h = inputs[0] * h + inputs[1]
            return h, h

        _, hs = jax.lax.scan(step, init, (jnp.swapaxes(decay, 0, 1), jnp.swapaxes(x, 0, 1)))
        return jnp.swapaxes(hs, 0, 1)
    raise ValueError(f"discounted_sum method={method!r}: must be auto, associative, sequential or step")


# --- feature maps and read-out ---------------------------------------------------------------------------------


def outer_flat(a, b) -> jnp.ndarray:
    """vec(a x b) over the last axes: [..., D], [..., eta] -> [..., D * eta] (index d * eta + e)."""
    return (a[..., :, None] * b[..., None, :]).reshape(*a.shape[:-1], a.shape[-1] * b.shape[-1])


def feature_activation(cfg: PolicyConfig):
    """f of the feature maps: relu(x), or elu(x) + 1 (cfg.agalite_kernel "eluplus1")."""
    return nn.relu if cfg.agalite_kernel == "relu" else (lambda x: nn.elu(x) + 1.0)


def feature_maps(cfg: PolicyConfig, kqvbg, p):
    """kqvbg [B, T, H, 5, D], p [B, T, H, 3, eta] -> psi(k), phi(q), v, beta, gamma."""
    k, q, v, b, g = (kqvbg[..., i, :] for i in range(5))
    p1, p2, p3 = (p[..., i, :] for i in range(3))
    beta, gate = nn.sigmoid(b), nn.sigmoid(g)
    if cfg.clamp_gates:
        beta, gate = jnp.clip(beta, *GATE_CLAMP), jnp.clip(gate, *GATE_CLAMP)
    f = feature_activation(cfg)
    psi = outer_flat(f(k), f(p1))
    phi = outer_flat(f(q), f(p2))
    gamma = outer_flat(gate, nn.sigmoid(p3))
    return psi, phi, v, beta, gamma


def read_out(cfg: PolicyConfig, keys, values, norm, phi) -> jnp.ndarray:
    """keys [B,T,R,H,E], values [B,T,R,H,D], norm [B,T,H,E], phi [B,T,H,E] -> o [B,T,H,D] (module docstring)."""
    r = cfg.num_oscillators
    if cfg.agalite_mode == "fast":
        score = jnp.einsum("btrhe,bthe->btr", keys, phi)
        num = jnp.einsum("btrhd,btr->bthd", values, score)
        den = 2 * r * jnp.maximum(jnp.einsum("bthe,bthe->bth", norm, phi), cfg.agalite_eps)
    else:
        score = jnp.einsum("btrhe,bthe->btrh", keys, phi)
        num = jnp.einsum("btrhd,btrh->bthd", values, score)
        den = 2 * r * jnp.einsum("bthe,bthe->bth", norm, phi) + cfg.agalite_eps
    out = num / den[..., None]
    return jnp.clip(out, -OUTPUT_CLAMP, OUTPUT_CLAMP) if cfg.clamp_output else out


@functools.partial(jax.jit, static_argnames="cfg")
def recurrent_attention(cfg: PolicyConfig, kqvbg, p, reset, state):
    """kqvbg [B, T, H, 5, D], p [B, T, H, 3, eta], reset [B, T], one layer's state -> (o [B, T, H, D], next state).

    Jitted as one program (cfg static) so that eager calls compile once per shape, not once per primitive.
    """
    sdt = state_dtype(cfg)
    psi, phi, v, beta, gamma = (m.astype(sdt) for m in feature_maps(cfg, kqvbg, p))
    r = cfg.num_oscillators
    n = episode_steps(state["tick"], reset, oscillator_period(r), restart=cfg.agalite_tick == "jax_tx")
    cos = oscillators(n, r, sdt)[..., None, None]  # [B, T, R, 1, 1]
    keep = (~reset).astype(sdt)[:, :, None, None]  # [B, T, 1, 1]
    decay_g, decay_b = (1.0 - gamma) * keep, (1.0 - beta) * keep
    k_in = gamma * psi
    keys = discounted_sum(decay_g[:, :, None], cos * k_in[:, :, None], state["keys"].astype(sdt))
    values = discounted_sum(decay_b[:, :, None], cos * (beta * v)[:, :, None], state["values"].astype(sdt))
    norm = discounted_sum(decay_g, k_in, state["norm"].astype(sdt))
    out = read_out(cfg, keys, values, norm, phi)
    nxt = {"keys": keys[:, -1], "values": values[:, -1], "norm": norm[:, -1], "tick": n[:, -1]}
    return out, jax.lax.stop_gradient(nxt)


# --- modules ---------------------------------------------------------------------------------------------------


def orthogonal(gain: float):
    return nn.initializers.orthogonal(scale=gain)


def kqvbg_bias_init(cfg: PolicyConfig):
    """Initialiser of the kqvbg bias [5 H D] (or the fused kqvbgp bias [5 H D + 3 H eta]): its first 5 H D entries,
    laid out [H, 5, D], hold cfg.agalite_gate_bias in blocks 3 (beta) and 4 (gamma) of every head; all else 0."""
    nh, dh, value = cfg.num_heads, cfg.head_dim, cfg.agalite_gate_bias

    def init(key, shape, dtype):
        gates = jnp.zeros((nh, 5, dh), dtype).at[:, 3:5].set(value).reshape(-1)
        return jnp.zeros(shape, dtype).at[: gates.shape[0]].set(gates)

    return init


class AGaLiTeAttention(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, a, reset, state, deterministic: bool):
        """a [B, T, Dm], reset [B, T], state (one layer's memory) -> (attn [B, T, Dm], next state)."""
        cfg = self.cfg
        bsz, steps = a.shape[:2]
        nh, dh, eta = cfg.num_heads, cfg.head_dim, cfg.eta
        bias_init = kqvbg_bias_init(cfg)
        if cfg.agalite_mode == "fast":
            fused = dense(
                cfg, 5 * nh * dh + 3 * nh * eta, "kqvbgp", kernel_init=orthogonal(math.sqrt(2)), bias_init=bias_init
            )(a)
            kqvbg, p = fused[..., : 5 * nh * dh], fused[..., 5 * nh * dh :]
        else:
            kqvbg = dense(cfg, 5 * nh * dh, "kqvbg", kernel_init=orthogonal(math.sqrt(2)), bias_init=bias_init)(a)
            p = dense(cfg, 3 * nh * eta, "p", kernel_init=orthogonal(math.sqrt(2)))(a)
        kqvbg, p = kqvbg.reshape(bsz, steps, nh, 5, dh), p.reshape(bsz, steps, nh, 3, eta)
        # kept only when apply asks for mutable=["intermediates"] (experiments/agalite_dead_features.py)
        self.sow("intermediates", "feature_inputs", (kqvbg, p))
        out, nxt = recurrent_attention(cfg, kqvbg, p, reset, state)
        out = out.reshape(bsz, steps, nh * dh).astype(a.dtype)
        y = dense(cfg, cfg.d_model, "proj", kernel_init=orthogonal(1.0))(out)
        y = nn.Dropout(cfg.dropout)(y, deterministic=deterministic)
        return y, nxt


class AGaLiTeLayer(nn.Module):
    """Standard: g1 = GRU1(x, relu(attn(LN1 x))), y = GRU2(g1, relu(FF(LN2 g1))) (the relus only with
    sublayer_relu, which the agalite presets set; Cortex has none); agalite_gating none puts x + y for each GRU(x, y);
    agalite_ff False returns g1. Fast: y = x + attn(x), or x + attn(LN1 x) with agalite_fast_norm."""

    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, reset, state, deterministic: bool):
        cfg = self.cfg
        attn = AGaLiTeAttention(cfg, name="attn")
        if cfg.agalite_mode == "fast":
            a, state = attn(layer_norm(cfg, "norm1")(x) if cfg.agalite_fast_norm else x, reset, state, deterministic)
            return x + a, state
        act = nn.relu if cfg.sublayer_relu else (lambda y: y)
        a, state = attn(layer_norm(cfg, "norm1")(x), reset, state, deterministic)
        g1 = combine(cfg, "gate1", x, act(a), cfg.agalite_gating)
        if not cfg.agalite_ff:
            return g1, state
        f = FeedForward(cfg, name="ff")(layer_norm(cfg, "norm2")(g1), deterministic)
        return combine(cfg, "gate2", g1, act(f), cfg.agalite_gating), state


class AGaLiTeCore(nn.Module):
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x, reset, memory, aux, deterministic: bool):
        """x [B, T, Dm], reset [B, T] -> (y [B, T, Dm], next memory)."""
        cfg = self.cfg
        check_memory_shapes(cfg, memory, x.shape[0])
        h, layers = x, []
        for i in range(cfg.num_layers):
            h, state = AGaLiTeLayer(cfg, name=f"layers_{i}")(h, reset, memory["layers"][i], deterministic)
            layers.append(state)
        nxt = {"layers": layers}
        if cfg.variant == "agalite_hybrid":
            h, nxt["lstm"] = LSTM(cfg, cfg.lstm_width, name="lstm")(h, reset, memory["lstm"])
            if cfg.lstm_width != cfg.d_model:
                h = dense(cfg, cfg.d_model, "lstm_out")(h)
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
    sdt = state_dtype(cfg)
    layer = {k: jnp.zeros(s, jnp.int32 if k == "tick" else sdt) for k, s in _layer_shapes(cfg, batch).items()}
    layer["tick"] = layer["tick"] + initial_tick(cfg)
    memory = {"layers": [dict(layer) for _ in range(cfg.num_layers)]}
    if cfg.variant == "agalite_hybrid":
        memory["lstm"] = lstm_initial_state(cfg, batch, cfg.lstm_width)
    return memory


def initial_tick(cfg: PolicyConfig) -> int:
    """n before the first step of fresh memory: 1 for agalite_tick="cortex" (its tick starts at 1), else 0."""
    return 1 if cfg.agalite_tick == "cortex" else 0


def make_core(cfg: PolicyConfig, name: str) -> nn.Module:
    return AGaLiTeCore(cfg, name=name)
