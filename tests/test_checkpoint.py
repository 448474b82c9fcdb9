"""jax_tx.io.checkpoint: orbax save/restore of params + config + training state, and its errors."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jax_tx
from jax_tx.config import SCHEMA_VERSION, preset
from jax_tx.io import checkpoint
from jax_tx.io.checkpoint import CheckpointError
from jax_tx.models.policy import example_inputs


def tiny(variant: str = "trxl", **kw):
    base = dict(d_model=8, num_layers=1, num_heads=2, d_ff=16, memory_len=4, actor_hidden=8, critic_hidden=8)
    base.update(kw)
    return preset(variant, obs_dim=5, num_actions=3, **base)


def init_params(cfg, seed=0):
    """Random variables of model.init's structure, shapes and dtypes (eval_shape: no eager init to compile)."""
    shapes = jax.eval_shape(jax_tx.make_policy(cfg).init, jax.random.PRNGKey(seed), *example_inputs(cfg))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape).astype(s.dtype)), shapes)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_with_optimizer_state_and_json(tmp_path):
    cfg = tiny("gtrxl", gating="gru")
    params = init_params(cfg)
    opt = optax.adam(1e-3)
    opt_state = jax.tree.map(lambda x: np.asarray(x) + 1, opt.init(params))  # moments and count != 0
    rng = jax.random.PRNGKey(7)
    checkpoint.save(
        tmp_path / "ck",
        5,
        params,
        cfg,
        extra={"opt_state": opt_state, "rng": rng},
        extra_json={"stats": {"return": 1.5, "updates": 3}},
    )
    r = checkpoint.restore(tmp_path / "ck", extra_templates={"opt_state": opt.init(params)})
    assert r.step == 5 and r.cfg == cfg
    assert_trees_equal(r.params, params)
    assert isinstance(jax.tree.leaves(r.params)[0], jax.Array)
    assert_trees_equal(r.extra["opt_state"], opt_state)  # NamedTuples come back as such
    assert type(r.extra["opt_state"][0]) is type(opt_state[0])
    np.testing.assert_array_equal(np.asarray(r.extra["rng"]), np.asarray(rng))
    assert r.extra_json == {"stats": {"return": 1.5, "updates": 3}}
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["5"]  # no temp directories left


def test_bfloat16_params_keep_their_dtype(tmp_path):
    cfg = tiny()
    params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), init_params(cfg))
    checkpoint.save(tmp_path, 0, params, cfg)
    r = checkpoint.restore(tmp_path)
    assert {x.dtype for x in jax.tree.leaves(r.params)} == {jnp.dtype(jnp.bfloat16)}
    assert_trees_equal(r.params, params)


def test_steps_latest_and_max_to_keep(tmp_path):
    cfg = tiny()
    params = init_params(cfg)
    assert checkpoint.all_steps(tmp_path / "none") == [] and checkpoint.latest_step(tmp_path) is None
    for step in (1, 2, 3):
        checkpoint.save(tmp_path / "all", step, jax.tree.map(lambda x, s=step: x + s, params), cfg)
        checkpoint.save(tmp_path / "two", step, params, cfg, max_to_keep=2)
    assert checkpoint.all_steps(tmp_path / "all") == [1, 2, 3]
    assert checkpoint.all_steps(tmp_path / "two") == [2, 3]
    assert checkpoint.latest_step(tmp_path / "all") == 3
    r = checkpoint.restore(tmp_path / "all", step=2)
    assert r.step == 2
    assert_trees_equal(r.params, jax.tree.map(lambda x: x + 2, params))
    with pytest.raises(CheckpointError, match=r"has no step 7; available steps: \[1, 2, 3\]"):
        checkpoint.restore(tmp_path / "all", step=7)
    with pytest.raises(CheckpointError, match="already holds step 3"):
        checkpoint.save(tmp_path / "all", 3, params, cfg)


def test_not_a_checkpoint(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CheckpointError, match=f"no checkpoint at {missing}: the directory does not exist"):
        checkpoint.restore(missing)
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="is not a jax_tx checkpoint .no completed steps.: pass the directory"):
        checkpoint.restore(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CheckpointError, match="is a file, not an orbax checkpoint directory"):
        checkpoint.restore(tmp_path / "file.txt")


def test_step_directory_names_its_parent(tmp_path):
    cfg = tiny()
    checkpoint.save(tmp_path / "ck", 4, init_params(cfg), cfg)
    with pytest.raises(CheckpointError, match=f"one step of a checkpoint; pass its parent {tmp_path / 'ck'}$"):
        checkpoint.restore(tmp_path / "ck" / "4")


def test_newer_schema_is_refused(tmp_path):
    cfg = tiny()
    checkpoint.save(tmp_path, 0, init_params(cfg), cfg)
    meta = tmp_path / "0" / "config" / "metadata"
    stored = json.loads(meta.read_text())
    assert stored == cfg.to_dict()
    meta.write_text(json.dumps({**stored, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(CheckpointError, match=f"schema_version {SCHEMA_VERSION + 1} is newer .* upgrade jax_tx"):
        checkpoint.restore(tmp_path)


def test_params_that_do_not_match_the_config(tmp_path):
    cfg = tiny()
    params = init_params(cfg)
    with pytest.raises(CheckpointError, match="shape mismatch at .*pass the config the params were built with"):
        checkpoint.save(tmp_path / "a", 0, params, cfg.replace(d_model=12, d_ff=24))
    with pytest.raises(CheckpointError, match="missing .*layers_1"):
        checkpoint.save(tmp_path / "b", 0, params, cfg.replace(num_layers=2))
    with pytest.raises(CheckpointError, match=r"expected the flax variables dict \{'params': ...\}"):
        checkpoint.save(tmp_path / "c", 0, params["params"], cfg)
    with pytest.raises(CheckpointError, match="extra item names \\['config'\\] are not allowed"):
        checkpoint.save(tmp_path / "d", 0, params, cfg, extra={"config": {}})
    assert not any((tmp_path / n).exists() for n in "abcd")
    # a stored config that does not match its params (edited on disk) is caught on restore
    checkpoint.save(tmp_path / "e", 0, params, cfg)
    meta = tmp_path / "e" / "0" / "config" / "metadata"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "num_layers": 2}))
    with pytest.raises(CheckpointError, match="params do not match the config"):
        checkpoint.restore(tmp_path / "e")


def test_unknown_extra_template(tmp_path):
    cfg = tiny()
    checkpoint.save(tmp_path, 0, init_params(cfg), cfg)
    with pytest.raises(
        CheckpointError, match=r"has no item\(s\) \['opt_state'\]; stored items: \['config', 'params'\]"
    ):
        checkpoint.restore(tmp_path, extra_templates={"opt_state": {}})


def test_float64_params_need_x64_to_restore(tmp_path):
    cfg = tiny()
    with jax.enable_x64(True):
        params = jax.tree.map(lambda x: x.astype(jnp.float64), init_params(cfg))
        checkpoint.save(tmp_path, 0, params, cfg)
        assert_trees_equal(checkpoint.restore(tmp_path).params, params)
    with pytest.raises(CheckpointError, match="holds float64 arrays but jax_enable_x64 is off; restore inside"):
        checkpoint.restore(tmp_path)  # instead of silently rounding to float32
