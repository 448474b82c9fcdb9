"""Slot transformer actor-critic twins: jax_tx/slot.py vs torch_ref/slot.py.

The shared battery runs on a small config (5 slots on a 2 x 3 grid); the tests below add
what is particular to slots: the slot count is a property of the input (same weights for
3, 10 and 50 slots, one compile per count), inactive slots change nothing, and gradients
reach every slot embedding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_tx
import torch_ref
from jax_tx.config import SLOT_INACTIVE_LOGIT, ConfigError, preset
from jax_tx.models import slot as jslot
from parity_tests import harness as h
from parity_tests.battery import *  # noqa: F403  (the shared parity tests, run for each `cfg`)

BASE, SLOT = 3, 4
SMALL = dict(base_dim=BASE, slot_dim=SLOT, d_model=16, num_layers=2, num_heads=2, d_ff=32, lstm_hidden=12)


def width(num_slots: int) -> int:
    return BASE + SLOT * num_slots


CONFIGS = {"grid_2x3": preset("slot", width(5), 3, **SMALL, slot_grid_rows=2, slot_grid_cols=3)}
WIDE = preset("slot", width(3), 3, **SMALL)  # default 8 x 8 grid: up to 64 slots


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.fixture
def other_variant_cfg():
    return preset("trxl", obs_dim=6, num_actions=3, d_model=16, num_layers=2, num_heads=2, d_ff=32, memory_len=4)


def slot_obs(num_slots: int, active: np.ndarray, seed: int = 0, batch: int = 3, steps: int = 5) -> np.ndarray:
    """Random [B, T, base | slots] with flags 1.0 where `active` [B, T, S] and 0.0 elsewhere."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(batch, steps, BASE)).astype(np.float32)
    slots = rng.normal(size=(batch, steps, num_slots, SLOT)).astype(np.float32)
    slots[..., 0] = active.astype(np.float32)
    return join(base, slots)


def join(base: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """base [B, T, BASE], slots [B, T, S, SLOT] -> flat obs [B, T, BASE + S * SLOT]."""
    return np.concatenate([base, slots.reshape(*slots.shape[:2], -1)], axis=-1)


def split(obs: np.ndarray, num_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Copies of (base, slots) of a flat obs."""
    return obs[..., :BASE].copy(), obs[..., BASE:].reshape(*obs.shape[:2], num_slots, SLOT).copy()


def random_active(num_slots: int, seed: int = 0, batch: int = 3, steps: int = 5) -> np.ndarray:
    return np.random.default_rng(seed + 100).random((batch, steps, num_slots)) < 0.6


def resets(batch: int = 3, steps: int = 5) -> np.ndarray:
    reset = np.zeros((batch, steps), bool)
    reset[:, 0] = True
    reset[0, 2] = True
    return reset


def test_same_weights_for_3_10_50_slots_and_one_compile_per_count():
    tmodel, model, params = h.build_pair(WIDE)
    init = jax.jit(model.init)  # abstract shapes only: eval_shape
    trees = {n: jax.eval_shape(init, jax.random.PRNGKey(0), *example(n))["params"] for n in (3, 10, 50)}
    shapes = {n: jax.tree_util.tree_map(lambda x: x.shape, tree) for n, tree in trees.items()}
    assert shapes[3] == shapes[10] == shapes[50]
    counts = {n: jslot.num_params(tree) for n, tree in trees.items()}
    assert len(set(counts.values())) == 1, counts
    assert counts[3] == sum(p.numel() for p in tmodel.parameters()) == jslot.num_params(params)
    traces = []

    def apply(p, obs, reset, mem):
        traces.append(obs.shape[-1])
        return model.apply(p, obs, reset, mem)

    fast = jax.jit(apply)
    for n in (3, 10, 50, 3, 10, 50):
        obs, reset = slot_obs(n, random_active(n, seed=n)), resets()
        out, mem = fast(params, jnp.asarray(obs), jnp.asarray(reset), jax_tx.initial_memory(WIDE, 3))
        with torch.no_grad():
            tout, tmem = tmodel(torch.as_tensor(obs), torch.as_tensor(reset), torch_ref.initial_memory(WIDE, 3))
        assert out.logits[1].shape == (3, 5, n)
        report = h.diff_report([out], mem, [tout], tmem)
        assert max(report.values()) <= h.FP32_TOL, (n, report)
    assert traces == [width(3), width(10), width(50)], "one trace per slot count, none on repeated calls"


def example(n: int):
    return jnp.zeros((1, 1, width(n))), jnp.zeros((1, 1), bool), jax_tx.initial_memory(WIDE, 1)


def jax_outputs_with_cls(model, params, cfg):
    """A jitted obs, reset -> {output leaves, memory leaves, "cls": CLS output [B, T, D]}."""

    @jax.jit
    def run(obs, reset):
        (out, mem), state = model.apply(
            params,
            obs,
            reset,
            jax_tx.initial_memory(cfg, obs.shape[0]),
            capture_intermediates=lambda mdl, _: isinstance(mdl, jslot.SlotEncoder),
            mutable=["intermediates"],
        )
        ((cls, _),) = state["intermediates"]["slot_encoder"]["__call__"]
        return out, mem, cls

    def outputs(obs, reset):
        out, mem, cls = run(jnp.asarray(obs), jnp.asarray(reset))
        return {**h.output_leaves(out), **h.memory_leaves(mem), "cls": np.asarray(cls)}

    return outputs


def torch_outputs_with_cls(tmodel, obs, reset, cfg):
    seen = {}
    hook = tmodel.slot_encoder.register_forward_hook(lambda _m, _i, o: seen.update(cls=o[0].numpy()))
    try:
        with torch.no_grad():
            out, mem = tmodel(torch.as_tensor(obs), torch.as_tensor(reset), torch_ref.initial_memory(cfg, obs.shape[0]))
    finally:
        hook.remove()
    return {**h.output_leaves(out), **h.memory_leaves(mem), **seen}


def test_inactive_slots_change_nothing():
    """New features (and flags <= 0.5) in inactive slots leave every output bit-identical."""
    cfg, n = WIDE, 7
    tmodel, model, params = h.build_pair(cfg)
    active = random_active(n)
    obs, reset = slot_obs(n, active), resets()
    base, slots = split(obs, n)
    noise = np.random.default_rng(9).normal(scale=5.0, size=slots.shape).astype(np.float32)
    noise[..., 0] = np.random.default_rng(10).uniform(-3.0, 0.5, size=slots.shape[:-1])  # still inactive
    moved = join(base, np.where(~active[..., None], noise, slots))
    assert not np.array_equal(moved, obs)
    bumped = slots.copy()
    bumped[active, 1:] += 1.0
    touched = join(base, bumped)
    jax_run = jax_outputs_with_cls(model, params, cfg)
    for run in (lambda o: jax_run(o, reset), lambda o: torch_outputs_with_cls(tmodel, o, reset, cfg)):
        before, after = run(obs), run(moved)
        for k in before:
            np.testing.assert_array_equal(before[k], after[k], err_msg=k)
        assert np.all(before["logits.1"][~active] == np.float32(SLOT_INACTIVE_LOGIT))
        assert np.all(before["logits.1"][active] > SLOT_INACTIVE_LOGIT / 2)
        changed = run(touched)  # changing *active* slots does move the outputs: the check above can fail
        assert not np.allclose(changed["cls"], before["cls"]) and not np.allclose(
            changed["logits.0"], before["logits.0"]
        )


def test_gradients_reach_every_slot_embedding():
    """All 2 x 3 grid positions in use: every row/column embedding, the slot embedding and CLS get
    gradient, and so does every active slot's input; inactive slots get exactly zero."""
    cfg, n = CONFIGS["grid_2x3"], 6
    tmodel, model, params = h.build_pair(cfg)
    active = random_active(n, seed=4)
    active[0, 0, :] = True  # every slot active at least once
    obs, reset = slot_obs(n, active, seed=4), resets()
    weights = np.random.default_rng(5).normal(size=(3, 5, cfg.num_actions + n + 1))

    def loss(p, o):
        out, _ = model.apply(p, o, jnp.asarray(reset), jax_tx.initial_memory(cfg, 3))
        slot_logits = jnp.where(jnp.asarray(active), out.logits[1], 0.0)
        stacked = jnp.concatenate([out.logits[0], slot_logits, out.value[..., None]], axis=-1)
        return jnp.sum(stacked * weights)

    g_params, g_obs = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, jnp.asarray(obs))
    enc = g_params["params"]["slot_encoder"]
    for name in ("row_embed", "col_embed"):
        assert np.all(np.abs(np.asarray(enc[name]["embedding"])).sum(axis=1) > 0), name
    assert np.all(np.abs(np.asarray(enc["slot_embed"]["kernel"])) > 0)
    assert np.all(np.abs(np.asarray(enc["cls_token"])) > 0)
    g_slots = np.abs(split(np.asarray(g_obs), n)[1][..., 1:]).sum(-1)
    assert np.all(g_slots[active] > 0) and np.all(g_slots[~active] == 0)

    t_obs = torch.as_tensor(obs).requires_grad_(True)
    out, _ = tmodel(t_obs, torch.as_tensor(reset), torch_ref.initial_memory(cfg, 3))
    slot_logits = out.logits[1].masked_fill(~torch.as_tensor(active), 0.0)
    stacked = torch.cat([out.logits[0], slot_logits, out.value[..., None]], dim=-1)
    (stacked * torch.as_tensor(weights, dtype=torch.float32)).sum().backward()
    t_slots = split(t_obs.grad.numpy(), n)[1][..., 1:]
    assert np.all(np.abs(t_slots).sum(-1)[active] > 0) and np.all(t_slots[~active] == 0)
    np.testing.assert_allclose(t_obs.grad.numpy(), np.asarray(g_obs), rtol=0, atol=1e-6)


def test_bad_slot_layouts_raise_clear_errors():
    cfg = CONFIGS["grid_2x3"]
    tmodel, model, params = h.build_pair(cfg)
    mem, tmem = jax_tx.initial_memory(cfg, 1), torch_ref.initial_memory(cfg, 1)
    for bad, why in (
        (width(2) + 1, "not base_dim=3 \\+ N \\* slot_dim=4"),
        (width(7), "N <= .* = 6"),
        (BASE, "1 <= N"),
    ):
        with pytest.raises(ValueError, match=f"obs has shape \\(1, 1, {bad}\\).*{why}"):
            model.apply(params, jnp.zeros((1, 1, bad)), jnp.zeros((1, 1), bool), mem)
        with pytest.raises(ValueError, match=f"obs has shape \\(1, 1, {bad}\\).*{why}"):
            tmodel(torch.zeros(1, 1, bad), torch.zeros(1, 1, dtype=torch.bool), tmem)
    with pytest.raises(ConfigError, match="base_dim=0.*needs it set"):
        preset("slot", 12, 3, slot_dim=4)
    with pytest.raises(ConfigError, match="d_model=15.*even"):
        preset("slot", width(2), 3, **{**SMALL, "d_model": 15, "num_heads": 3})
    with pytest.raises(ConfigError, match="obs_dim=8"):
        preset("slot", 8, 3, **SMALL)


def test_preset_is_the_issue_architecture():
    """Width 64, 2 layers, 4 heads, LSTM 128; the parameter count does not depend on N."""
    cfg = preset("slot", width(3), 5, base_dim=BASE, slot_dim=SLOT)
    assert (cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.lstm_width) == (64, 2, 4, 128)
    assert cfg.slot_grid_rows * cfg.slot_grid_cols >= 50
    torch.manual_seed(0)
    tmodel = torch_ref.make_policy(cfg)
    mem = torch_ref.initial_memory(cfg, 2)
    for n in (3, 50):
        out, _ = tmodel(torch.zeros(2, 1, width(n)), torch.ones(2, 1, dtype=torch.bool), mem)
        assert out.logits[0].shape == (2, 1, 5) and out.logits[1].shape == (2, 1, n) and out.value.shape == (2, 1)
