"""The parity battery: the same weights and inputs through both twins, compared.

Every variant's test file calls these checks with its own small configs:
  forward parity (fp32 and fp64) after torch -> flax conversion, memory carried over
  several chunks; gradient parity (fp64); step mode == sequence mode; reset == fresh
  memory; conversion round trips (bit-exact); jit == no-jit without retracing; clear
  errors on bad inputs.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import torch

import jax_tx
import torch_ref
from jax_tx.config import PolicyConfig
from jax_tx.io import convert
from jax_tx.io.verify import Chunk, random_chunks
from jax_tx.models.policy import example_inputs

FP32_TOL = 1e-5
FP64_TOL = 1e-10
GRAD_FP64_TOL = 1e-9


# the same random inputs `jax-tx convert --verify` uses
make_chunks = random_chunks


def float64_context(cfg: PolicyConfig):
    return jax.enable_x64(True) if cfg.dtype == "float64" else contextlib.nullcontext()


def build_pair(cfg: PolicyConfig, seed: int = 0):
    """(torch model, flax model, flax variables converted from the torch weights)."""
    torch.manual_seed(seed)
    tmodel = torch_ref.make_policy(cfg)
    params = convert.torch_to_flax(tmodel.state_dict(), cfg)
    return tmodel, jax_tx.make_policy(cfg), params


def aux_kwargs(cfg: PolicyConfig, chunk: Chunk, to_torch: bool) -> dict:
    if not (cfg.aux_tokens or cfg.variant == "sliding"):
        return {}
    wrap = torch.as_tensor if to_torch else jnp.asarray
    return {"prev_action": wrap(chunk.prev_action), "prev_reward": wrap(chunk.prev_reward)}


def run_jax(model, params, cfg: PolicyConfig, chunks, memory=None, apply=None):
    """Outputs per chunk and the final memory, carrying memory across chunks."""
    apply = apply or model.apply
    memory = jax_tx.initial_memory(cfg, chunks[0].obs.shape[0]) if memory is None else memory
    outs = []
    for ch in chunks:
        out, memory = apply(params, jnp.asarray(ch.obs), jnp.asarray(ch.reset), memory, **aux_kwargs(cfg, ch, False))
        outs.append(out)
    return outs, memory


def run_torch(tmodel, cfg: PolicyConfig, chunks, memory=None):
    memory = torch_ref.initial_memory(cfg, chunks[0].obs.shape[0]) if memory is None else memory
    outs = []
    with torch.no_grad():
        for ch in chunks:
            out, memory = tmodel(
                torch.as_tensor(ch.obs), torch.as_tensor(ch.reset), memory, **aux_kwargs(cfg, ch, True)
            )
            outs.append(out)
    return outs, memory


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def output_tensors(out) -> dict:
    """{'logits': ..., 'value': ...}; several logit heads become logits.0, logits.1, ..."""
    leaves = {"value": out.value}
    if isinstance(out.logits, (list, tuple)):
        leaves.update({f"logits.{i}": x for i, x in enumerate(out.logits)})
    else:
        leaves["logits"] = out.logits
    return leaves


def output_leaves(out) -> dict[str, np.ndarray]:
    return {k: _np(v) for k, v in output_tensors(out).items()}


def memory_leaves(memory) -> dict[str, np.ndarray]:
    """Memory leaves by path; jax and torch dict trees flatten in the same sorted-key order."""
    return {jax.tree_util.keystr(path): _np(x) for path, x in jax.tree_util.tree_flatten_with_path(memory)[0]}


def diff_report(jax_outs, jax_mem, torch_outs, torch_mem) -> dict[str, float]:
    """Max-abs difference per output leaf (over all chunks) and per final memory leaf."""
    report: dict[str, float] = {}
    for jo, to in zip(jax_outs, torch_outs, strict=True):
        jl, tl = output_leaves(jo), output_leaves(to)
        assert jl.keys() == tl.keys()
        for k in jl:
            assert jl[k].shape == tl[k].shape, (k, jl[k].shape, tl[k].shape)
            report[k] = max(report.get(k, 0.0), float(np.max(np.abs(jl[k].astype(np.float64) - tl[k]))))
    jm, tm = memory_leaves(jax_mem), memory_leaves(torch_mem)
    assert jm.keys() == tm.keys()
    for k in jm:
        assert jm[k].shape == tm[k].shape, (k, jm[k].shape, tm[k].shape)
        a, b = jm[k].astype(np.float64), tm[k].astype(np.float64)
        report[k] = float(np.max(np.abs(a - b))) if a.size else 0.0
    return report


def check_forward_parity(cfg: PolicyConfig, tol: float, **chunk_kw) -> dict[str, float]:
    """Convert torch -> flax, run both over chunks carrying memory, assert max-abs <= tol."""
    with float64_context(cfg):
        tmodel, model, params = build_pair(cfg)
        chunks = make_chunks(cfg, **chunk_kw)
        j_outs, j_mem = run_jax(model, params, cfg, chunks)
        t_outs, t_mem = run_torch(tmodel, cfg, chunks)
        report = diff_report(j_outs, j_mem, t_outs, t_mem)
    worst = max(report.values())
    assert worst <= tol, f"{cfg.variant}: max-abs difference {worst:.3e} > {tol:.0e}: {report}"
    return report


def _loss_weights(out, seed: int):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=v.shape) for k, v in output_leaves(out).items()}


def check_gradient_parity(cfg: PolicyConfig, tol: float = GRAD_FP64_TOL, **chunk_kw) -> float:
    """d(sum_c sum w . out_c)/d(params) in both twins (float64), compared per parameter."""
    assert cfg.dtype == "float64"
    with jax.enable_x64(True):
        tmodel, model, params = build_pair(cfg)
        chunks = make_chunks(cfg, **chunk_kw)
        t_outs, _ = run_torch(tmodel, cfg, chunks)
        weights = [_loss_weights(o, i) for i, o in enumerate(t_outs)]

        def scalar(leaves, w, lib):
            return sum(lib.sum(leaves[k] * w[k]) for k in w)

        tmodel.zero_grad()
        memory = torch_ref.initial_memory(cfg, chunks[0].obs.shape[0])
        total = 0.0
        for ch, w in zip(chunks, weights, strict=True):
            out, memory = tmodel(
                torch.as_tensor(ch.obs), torch.as_tensor(ch.reset), memory, **aux_kwargs(cfg, ch, True)
            )
            total = total + scalar(output_tensors(out), {k: torch.as_tensor(v) for k, v in w.items()}, torch)
        total.backward()
        t_grads = {k: p.grad if p.grad is not None else torch.zeros_like(p) for k, p in tmodel.named_parameters()}
        t_grads = convert.torch_to_flax(t_grads, cfg)

        def jax_loss(p):
            memory = jax_tx.initial_memory(cfg, chunks[0].obs.shape[0])
            total = 0.0
            for ch, w in zip(chunks, weights, strict=True):
                out, memory = model.apply(
                    p, jnp.asarray(ch.obs), jnp.asarray(ch.reset), memory, **aux_kwargs(cfg, ch, False)
                )
                total = total + scalar(output_tensors(out), {k: jnp.asarray(v) for k, v in w.items()}, jnp)
            return total

        j_grads = jax.grad(jax_loss)(params)
        diffs = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), j_grads, t_grads)
        scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(j_grads))
    worst = max(jax.tree_util.tree_leaves(diffs))
    assert scale > 0, "all gradients are zero: the loss does not reach the parameters"
    assert worst <= tol, f"{cfg.variant}: gradient max-abs difference {worst:.3e} > {tol:.0e}"
    return worst


def check_step_equals_sequence(cfg: PolicyConfig, tol: float = FP32_TOL, **chunk_kw) -> float:
    """One call over T steps == T calls of one step carrying memory (JAX and torch)."""
    tmodel, model, params = build_pair(cfg)
    chunks = make_chunks(cfg, **chunk_kw)
    steps = [
        Chunk(c.obs[:, t : t + 1], c.reset[:, t : t + 1], c.prev_action[:, t : t + 1], c.prev_reward[:, t : t + 1])
        for c in chunks
        for t in range(c.obs.shape[1])
    ]
    worst = 0.0
    for runner, args in ((run_jax, (model, params, cfg)), (run_torch, (tmodel, cfg))):
        seq_outs, seq_mem = runner(*args, chunks)
        step_outs, step_mem = runner(*args, steps)
        for name in output_leaves(seq_outs[0]):
            seq = np.concatenate([output_leaves(o)[name] for o in seq_outs], axis=1)
            step = np.concatenate([output_leaves(o)[name] for o in step_outs], axis=1)
            worst = max(worst, float(np.max(np.abs(seq - step))))
        for a, b in zip(memory_leaves(seq_mem).values(), memory_leaves(step_mem).values(), strict=True):
            if a.size:
                worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))))
    assert worst <= tol, f"{cfg.variant}: sequence vs step max-abs difference {worst:.3e} > {tol:.0e}"
    return worst


def check_reset_equals_fresh(cfg: PolicyConfig, **chunk_kw) -> None:
    """With reset at t=0, outputs and memory do not depend on the memory passed in."""
    tmodel, model, params = build_pair(cfg)
    warm = make_chunks(cfg, seed=1, **chunk_kw)
    chunk = make_chunks(cfg, seed=2, chunks=1, **chunk_kw)[0]
    chunk.reset[:, 0] = True
    for runner, args in ((run_jax, (model, params, cfg)), (run_torch, (tmodel, cfg))):
        _, used_mem = runner(*args, warm)
        used_outs, used_next = runner(*args, [chunk], memory=used_mem)
        fresh_outs, fresh_next = runner(*args, [chunk])
        for k, v in output_leaves(used_outs[0]).items():
            np.testing.assert_allclose(v, output_leaves(fresh_outs[0])[k], rtol=0, atol=1e-6, err_msg=k)
        for k, v in memory_leaves(used_next).items():
            np.testing.assert_allclose(v, memory_leaves(fresh_next)[k], rtol=0, atol=1e-6, err_msg=k)


def check_round_trips(cfg: PolicyConfig) -> None:
    """torch -> flax -> torch and flax -> torch -> flax are bit-exact."""
    tmodel, model, params = build_pair(cfg)
    state = tmodel.state_dict()
    back = convert.flax_to_torch(convert.torch_to_flax(state, cfg), cfg)
    assert set(back) == set(state)
    for k in state:
        assert back[k].dtype == state[k].dtype and torch.equal(back[k], state[k]), k
    init = model.init(jax.random.PRNGKey(3), *example_inputs(cfg))
    again = convert.torch_to_flax(convert.flax_to_torch(init, cfg), cfg)
    same = jax.tree_util.tree_map(lambda a, b: a.dtype == b.dtype and bool(jnp.array_equal(a, b)), init, again)
    assert all(jax.tree_util.tree_leaves(same))
    assert jax.tree_util.tree_structure(init) == jax.tree_util.tree_structure(again)


def check_jit_matches_and_no_retrace(cfg: PolicyConfig, **chunk_kw) -> None:
    """jit == no-jit, and a jitted apply traces once for repeated calls of one shape."""
    _, model, params = build_pair(cfg)
    chunks = make_chunks(cfg, **chunk_kw)
    traces = []

    def apply(p, obs, reset, mem, **kw):
        traces.append(1)
        return model.apply(p, obs, reset, mem, **kw)

    eager_outs, eager_mem = run_jax(model, params, cfg, chunks)
    jit_outs, jit_mem = run_jax(model, params, cfg, chunks, apply=jax.jit(apply))
    assert len(traces) == 1, f"jitted apply traced {len(traces)} times for {len(chunks)} calls of one shape"
    for a, b in zip(eager_outs, jit_outs, strict=True):
        for k, v in output_leaves(a).items():
            np.testing.assert_allclose(v, output_leaves(b)[k], rtol=0, atol=1e-5, err_msg=k)
    for k, v in memory_leaves(eager_mem).items():
        np.testing.assert_allclose(v, memory_leaves(jit_mem)[k], rtol=0, atol=1e-5, err_msg=k)


def check_bad_inputs(cfg: PolicyConfig, other_variant_cfg: PolicyConfig) -> None:
    """Wrong shapes and wrong weights raise errors that name the problem."""
    import pytest

    tmodel, model, params = build_pair(cfg)
    obs, reset, mem = example_inputs(cfg, batch=2, steps=3)
    tmem = torch_ref.initial_memory(cfg, 2)
    bad_obs = jnp.zeros((2, 3, cfg.obs_dim + 1, *obs.shape[3:]), obs.dtype)
    with pytest.raises(ValueError, match="obs has shape"):
        model.apply(params, bad_obs, reset, mem)
    with pytest.raises(ValueError, match="obs has shape"):
        tmodel(torch.as_tensor(np.asarray(bad_obs)), torch.zeros(2, 3, dtype=torch.bool), tmem)
    with pytest.raises(ValueError, match="reset has shape"):
        model.apply(params, obs, jnp.zeros((2, 4), bool), mem)
    with pytest.raises(ValueError, match="reset has shape"):
        tmodel(torch.as_tensor(np.asarray(obs)), torch.zeros(2, 4, dtype=torch.bool), tmem)
    with pytest.raises(ValueError, match="memory has batch"):
        model.apply(params, obs, reset, jax_tx.initial_memory(cfg, 3))
    state = tmodel.state_dict()
    first = sorted(state)[0]
    with pytest.raises(convert.ConversionError, match=r"missing keys \[" + repr(first).replace(".", r"\.")):
        convert.torch_to_flax({k: v for k, v in state.items() if k != first}, cfg)
    with pytest.raises(convert.ConversionError, match="unexpected keys .*'extra.weight'"):
        convert.torch_to_flax({**state, "extra.weight": torch.zeros(2)}, cfg)
    bent = dict(state)
    bent[first] = torch.zeros(*(s + 1 for s in state[first].shape))
    with pytest.raises(convert.ConversionError, match="shape mismatch at " + repr(first).replace(".", r"\.")):
        convert.torch_to_flax(bent, cfg)
    torch.manual_seed(0)
    other = torch_ref.make_policy(other_variant_cfg).state_dict()
    with pytest.raises(convert.ConversionError, match=f"look like variant '{other_variant_cfg.variant}'"):
        convert.torch_to_flax(other, cfg)
