"""Run the same inputs through both twins and report max-abs differences (used by `jax-tx convert --verify`).

    report = verify_twins(cfg, torch_state_dict, flax_variables)
    worst = max(report.values())     # {'logits': ..., 'value': ..., "['mem'][0]": ...}

Random observations with episode resets (at t=0 of the first chunk, mid-chunk, at the
last step) go through several chunks, memory carried from chunk to chunk, in the torch
twin loaded with `torch_state_dict` and the flax twin applied with `flax_variables`.
The report holds the max-abs difference per output (over all chunks) and per final
memory leaf. Needs torch (the `torch` extra).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.config import PolicyConfig

DEFAULT_TOL = 1e-5
"""float32 max-abs tolerance of the parity suite; float64 configs use 1e-10."""
FP64_TOL = 1e-10


@dataclass
class Chunk:
    obs: np.ndarray  # [B, T, obs_dim] (encoder="tokens": uint8 [B, T, obs_dim, 3])
    reset: np.ndarray  # [B, T] bool
    prev_action: np.ndarray  # [B, T] int
    prev_reward: np.ndarray  # [B, T]


def default_tol(cfg: PolicyConfig) -> float:
    return FP64_TOL if cfg.dtype == "float64" else DEFAULT_TOL


def random_chunks(
    cfg: PolicyConfig, batch: int = 3, steps: int = 6, chunks: int = 3, seed: int = 0, obs_dim: int | None = None
) -> list[Chunk]:
    """Random inputs; resets at t=0 of the first chunk, mid-chunk in row 0, at the last step in row 1.

    obs_dim overrides cfg.obs_dim (e.g. another slot count for the slot variant).
    """
    rng = np.random.default_rng(seed)
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    out = []
    for c in range(chunks):
        reset = rng.random((batch, steps)) < 0.15
        if c == 0:
            reset[:, 0] = True
        reset[0, steps // 2] = True
        reset[1 % batch, steps - 1] = True
        if cfg.encoder == "tokens":
            obs = random_tokens(cfg, rng, batch, steps)
        else:
            obs = rng.normal(size=(batch, steps, obs_dim or cfg.obs_dim)).astype(dtype)
        out.append(
            Chunk(
                obs=obs,
                reset=reset,
                prev_action=rng.integers(0, cfg.num_actions, size=(batch, steps)),
                prev_reward=rng.normal(size=(batch, steps)).astype(dtype),
            )
        )
    return out


def random_tokens(cfg: PolicyConfig, rng: np.random.Generator, batch: int, steps: int, padding: float = 0.25):
    """uint8 [B, T, obs_dim, 3] token observations: coordinates inside the grid, ids below the table (and 255),
    a `padding` fraction of padding tokens (three 0xFF bytes) anywhere, and row 0's step 1 all padding."""
    shape = (batch, steps, cfg.obs_dim)
    grid = cfg.token_grid_size
    coord = rng.integers(0, grid, shape) * 16 + rng.integers(0, grid, shape)
    attr = rng.integers(0, min(cfg.token_attr_vocab, 255), shape)
    tokens = np.stack([coord, attr, rng.integers(0, 256, shape)], axis=-1).astype(np.uint8)
    tokens[rng.random(shape) < padding] = 0xFF
    if steps > 1:
        tokens[0, 1] = 0xFF
    return tokens


def _aux_kwargs(cfg: PolicyConfig, chunk: Chunk, wrap) -> dict[str, Any]:
    if not (cfg.aux_tokens or cfg.variant == "sliding"):
        return {}
    return {"prev_action": wrap(chunk.prev_action), "prev_reward": wrap(chunk.prev_reward)}


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def output_leaves(out) -> dict[str, np.ndarray]:
    """{'logits', 'value'} as numpy; several logit heads become logits.0, logits.1, ..."""
    leaves = {"value": _numpy(out.value)}
    if isinstance(out.logits, (list, tuple)):
        leaves.update({f"logits.{i}": _numpy(x) for i, x in enumerate(out.logits)})
    else:
        leaves["logits"] = _numpy(out.logits)
    return leaves


def memory_leaves(memory) -> dict[str, np.ndarray]:
    """Memory leaves by path (jax and torch dict trees flatten in the same sorted-key order)."""
    return {jax.tree_util.keystr(p): _numpy(x) for p, x in jax.tree_util.tree_flatten_with_path(memory)[0]}


def run_flax(cfg: PolicyConfig, variables, chunks: list[Chunk]):
    """Per-chunk outputs and the final memory of the flax twin."""
    import jax_tx

    model = jax_tx.make_policy(cfg)
    apply = jax.jit(model.apply)
    memory = jax_tx.initial_memory(cfg, chunks[0].obs.shape[0])
    outs = []
    for ch in chunks:
        out, memory = apply(
            variables, jnp.asarray(ch.obs), jnp.asarray(ch.reset), memory, **_aux_kwargs(cfg, ch, jnp.asarray)
        )
        outs.append(output_leaves(out))
    return outs, memory_leaves(memory)


def run_torch(cfg: PolicyConfig, state_dict, chunks: list[Chunk]):
    """Per-chunk outputs and the final memory of the torch twin (eval mode, no grad)."""
    import torch

    import torch_ref

    model = torch_ref.make_policy(cfg)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    memory = torch_ref.initial_memory(cfg, chunks[0].obs.shape[0])
    outs = []
    with torch.no_grad():
        for ch in chunks:
            kw = _aux_kwargs(cfg, ch, torch.as_tensor)
            out, memory = model(torch.as_tensor(ch.obs), torch.as_tensor(ch.reset), memory, **kw)
            outs.append(output_leaves(out))
    return outs, memory_leaves(memory)


def diff_report(flax_run, torch_run) -> dict[str, float]:
    """Max-abs difference per output leaf (over chunks) and per final memory leaf."""
    (f_outs, f_mem), (t_outs, t_mem) = flax_run, torch_run
    report: dict[str, float] = {}
    for fo, to in zip(f_outs, t_outs, strict=True):
        if fo.keys() != to.keys():
            raise ValueError(f"output fields differ: flax {sorted(fo)}, torch {sorted(to)}")
        for k in fo:
            report[k] = max(report.get(k, 0.0), _max_abs(k, fo[k], to[k]))
    if f_mem.keys() != t_mem.keys():
        raise ValueError(f"memory leaves differ: flax {sorted(f_mem)}, torch {sorted(t_mem)}")
    for k in f_mem:
        report[f"memory{k}"] = _max_abs(k, f_mem[k], t_mem[k])
    return report


def _max_abs(name: str, a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"{name}: flax shape {a.shape} != torch shape {b.shape}")
    if not a.size:
        return 0.0
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float("inf") if np.isnan(d).any() else float(d.max())


def verify_twins(cfg: PolicyConfig, state_dict, variables, chunks: list[Chunk] | None = None) -> dict[str, float]:
    """Max-abs differences between the torch twin (state_dict) and the flax twin (variables)."""
    ctx = jax.enable_x64(True) if cfg.dtype == "float64" else contextlib.nullcontext()
    with ctx:
        chunks = chunks or random_chunks(cfg)
        return diff_report(run_flax(cfg, variables, chunks), run_torch(cfg, state_dict, chunks))


def format_report(report: dict[str, float], tol: float) -> str:
    """One line per leaf, worst marked, e.g. '  logits   2.4e-07  ok'."""
    width = max(len(k) for k in report)
    return "\n".join(f"  {k:<{width}}  {v:.3e}  {'ok' if v <= tol else 'FAIL'}" for k, v in report.items())
