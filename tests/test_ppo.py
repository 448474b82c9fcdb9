"""Unit tests of jax_tx.ppo: GAE, schedules, the rollout/update memory contract, retracing, bf16."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_tx import config
from jax_tx.envs import make_env
from jax_tx.models.policy import initial_memory
from jax_tx.ppo import heads, schedules
from jax_tx.ppo.advantages import bootstrap_values, gae, gae_python
from jax_tx.ppo.trainer import Trainer
from jax_tx.ppo.update import forward, make_segments, take

TINY = dict(
    d_model=16,
    num_layers=1,
    num_heads=2,
    d_head=8,
    d_ff=32,
    memory_len=6,
    actor_hidden=16,
    critic_hidden=16,
    lstm_hidden=16,
    max_cache_size=24,
    dropout=0.0,
    attn_dropout=0.0,
)


def tiny_train_config(variant: str, env_kwargs=None, **overrides) -> config.TrainConfig:
    env_kwargs = env_kwargs or {"corridor_length": 2}
    env = make_env("tmaze", **env_kwargs)
    policy_over = {**TINY, **overrides.pop("policy", {})}
    pc = config.preset(variant, env.obs_dim, env.num_actions, **policy_over)
    ppo = config.PPOConfig(**{"bptt_horizon": 4, "num_minibatches": 4, "update_epochs": 1, **overrides.pop("ppo", {})})
    base = dict(env="tmaze", env_kwargs=env_kwargs, num_envs=4, rollout_steps=16, total_steps=4 * 16 * 4, seed=3)
    return config.TrainConfig(policy=pc, ppo=ppo, **{**base, **overrides})


SLOT_ENV = {"num_slots": 4, "min_active": 2, "episode_length": 3}


def tiny_slot_train_config(variant: str, **env_kwargs) -> config.TrainConfig:
    """A tiny run of `variant` on slot_select (factored actions with masks; episodes end inside the rollout)."""
    kw = {**SLOT_ENV, **env_kwargs}
    env = make_env("slot_select", **kw)
    layout = {"base_dim": env.base_dim, "slot_dim": env.slot_dim} if variant == "slot" else {}
    pc = config.preset(variant, env.obs_dim, heads.policy_num_actions(env, variant), **TINY, **layout)
    ppo = config.PPOConfig(bptt_horizon=4, num_minibatches=4, update_epochs=1)
    return config.TrainConfig(
        policy=pc, ppo=ppo, env="slot_select", env_kwargs=kw, num_envs=4, rollout_steps=16, total_steps=256, seed=3
    )


def random_episode_data(seed: int, t: int = 13, b: int = 5):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(t, b)).astype(np.float32)
    values = rng.normal(size=(t, b)).astype(np.float32)
    last = rng.normal(size=(b,)).astype(np.float32)
    trunc_v = rng.normal(size=(t, b)).astype(np.float32)
    term = rng.random((t, b)) < 0.15
    trunc = (rng.random((t, b)) < 0.1) & ~term
    return rewards, values, last, trunc_v, term, trunc


def test_gae_scan_equals_python_loop_with_termination_and_truncation():
    rewards, values, last, trunc_v, term, trunc = random_episode_data(0)
    nv = bootstrap_values(jnp.asarray(values), jnp.asarray(last), jnp.asarray(trunc_v), term, trunc)
    following = np.concatenate([values[1:], last[None]])
    expect_nv = np.where(term, 0.0, np.where(trunc, trunc_v, following))
    np.testing.assert_array_equal(np.asarray(nv), expect_nv)
    done = term | trunc
    adv = gae(jnp.asarray(rewards), jnp.asarray(values), nv, jnp.asarray(done), 0.97, 0.9)
    ref = np.stack(gae_python(rewards, values, expect_nv, done.astype(np.float32), 0.97, 0.9))
    np.testing.assert_allclose(np.asarray(adv), ref, rtol=0, atol=1e-5)


def test_vtrace_with_unit_ratio_and_segment_tails_equals_full_gae():
    rewards, values, last, trunc_v, term, trunc = random_episode_data(1, t=12)
    nv = bootstrap_values(jnp.asarray(values), jnp.asarray(last), jnp.asarray(trunc_v), term, trunc)
    done = jnp.asarray(term | trunc)
    full = gae(jnp.asarray(rewards), jnp.asarray(values), nv, done, 0.99, 0.95)
    h = 4
    for i in range(3):
        sl = slice(i * h, (i + 1) * h)
        tail = full[(i + 1) * h] if i < 2 else jnp.zeros_like(full[0])
        ones = jnp.ones_like(full[sl])
        part = gae(
            rewards[sl], values[sl], nv[sl], done[sl], 0.99, 0.95, ratio=ones, rho_clip=1.0, c_clip=1.0, tail=tail
        )
        np.testing.assert_allclose(np.asarray(part), np.asarray(full[sl]), atol=1e-5)
    # ratios above the clip are cut to rho_clip: doubling every ratio changes nothing at clip 1.0
    twice = gae(rewards, values, nv, done, 0.99, 0.95, ratio=2 * jnp.ones_like(full), rho_clip=1.0, c_clip=1.0)
    np.testing.assert_allclose(np.asarray(twice), np.asarray(full), atol=1e-5)
    half = gae(rewards, values, nv, done, 0.99, 0.95, ratio=0.5 * jnp.ones_like(full), rho_clip=1.0, c_clip=1.0)
    assert not np.allclose(np.asarray(half), np.asarray(full), atol=1e-3)


def test_schedules_endpoints_and_shapes():
    ppo = config.PPOConfig(learning_rate=4.57e-4, lr_final=3e-5, lr_warmup_iterations=10)
    n = 111
    lr = [float(schedules.learning_rate(ppo, i, n)) for i in range(n)]
    assert lr[0] == pytest.approx(4.57e-5, rel=1e-5) and lr[9] == pytest.approx(4.57e-4, rel=1e-5)
    assert lr[10] == pytest.approx(4.57e-4, rel=1e-5) and lr[-1] == pytest.approx(3e-5, rel=1e-5)
    assert lr[60] == pytest.approx(3e-5 + (4.57e-4 - 3e-5) / 2, rel=1e-4)  # cosine midpoint
    assert all(a >= b for a, b in zip(lr[10:], lr[11:], strict=False))
    start, mid, end = (schedules.schedule_values(ppo, i, 101) for i in (0, 50, 100))
    assert float(start.clip_coef) == pytest.approx(0.1) and float(end.clip_coef) == pytest.approx(0.05)
    assert float(mid.clip_coef) == pytest.approx(np.sqrt(0.1 * 0.05), rel=1e-5)  # log-linear
    assert float(mid.vf_clip_coef) == pytest.approx(0.075, rel=1e-5)  # linear
    assert float(start.ent_coef) == pytest.approx(0.0021) and float(end.ent_coef) == pytest.approx(0.0, abs=1e-9)


def test_train_config_round_trip_and_validation():
    tc = tiny_train_config("trxl", ppo={"vtrace": True, "optimizer": "adamw", "weight_decay": 0.01})
    assert config.TrainConfig.from_json(tc.to_json()) == tc
    with pytest.raises(config.ConfigError, match="num_minibatches"):
        tiny_train_config("trxl", ppo={"num_minibatches": 7})
    with pytest.raises(config.ConfigError, match="gae_lambda"):
        config.PPOConfig(gae_lambda=1.5)
    with pytest.raises(config.ConfigError, match="unknown ppo config field"):
        config.PPOConfig.from_dict({"gama": 0.9})


RATIO_VARIANTS = [v for v in config.VARIANTS if v != "slot"]


def recompute_errors(tc: config.TrainConfig, zero_memory: bool = False):
    """Max |ratio - 1| and max |V - V_rollout| over every minibatch of the first epoch, before any step."""
    tr = Trainer(tc)
    state = tr.init()

    @jax.jit
    def errors(state):
        _, ro, adv, nv = tr.collect(state.params, state.carry, state.key)
        seg = make_segments(ro.transitions, ro.segment_memory, adv, nv, tc.ppo.bptt_horizon)
        if zero_memory:
            seg = seg.replace(memory=initial_memory(tc.policy, seg.tail.shape[0]))
        order = jax.random.permutation(jax.random.PRNGKey(1), seg.tail.shape[0]).reshape(tc.ppo.num_minibatches, -1)

        def one(idx):
            mb = take(seg, idx)
            logits, values = forward(tr.model, state.params, tc.policy, mb)
            logp, _, _ = heads.log_prob_entropy(logits, mb.action, mb.mask)
            return jnp.max(jnp.abs(jnp.exp(logp - mb.logp) - 1.0)), jnp.max(jnp.abs(values - mb.value))

        r, v = jax.lax.map(one, order)
        resets = ro.transitions.reset[1:].sum()  # episodes started inside the rollout
        return r.max(), v.max(), resets

    return [float(x) for x in errors(state)]


@pytest.mark.parametrize("variant", RATIO_VARIANTS)
def test_ratio_is_one_and_values_match_before_first_step(variant):
    ratio_err, value_err, resets = recompute_errors(tiny_train_config(variant))
    assert resets > 0  # episodes end inside the rollout, so resets inside segments are exercised
    assert ratio_err <= 1e-5
    assert value_err <= 1e-5


@pytest.mark.parametrize("variant", ["slot", "lstm"])
def test_ratio_is_one_for_factored_masked_heads_before_first_step(variant):
    """slot (two heads) and the flat lstm (one head cut into the env's two) on slot_select, with action masks."""
    ratio_err, value_err, resets = recompute_errors(tiny_slot_train_config(variant))
    assert resets > 0
    assert ratio_err <= 1e-5
    assert value_err <= 1e-5


def test_ratio_is_one_with_aux_tokens():
    ratio_err, value_err, _ = recompute_errors(tiny_train_config("trxl", policy={"aux_tokens": True}))
    assert ratio_err <= 1e-5 and value_err <= 1e-5


def test_ratio_is_one_with_the_token_encoder():
    """encoder="tokens" on the token T-Maze (uint8 observations through rollout, segments and recompute)."""
    tc = tiny_train_config("gtrxl", policy={"encoder": "tokens", "token_num_latents": 2, "token_num_heads": 2})
    env_kwargs = {"corridor_length": 2, "num_tokens": 4}
    tc = tc.replace(env="token_tmaze", env_kwargs=env_kwargs, policy=tc.policy.replace(obs_dim=4))
    ratio_err, value_err, resets = recompute_errors(tc)
    assert resets > 0
    assert ratio_err <= 1e-5 and value_err <= 1e-5


def test_zero_initialised_training_memory_breaks_the_ratio():
    """The check above has teeth: recomputing segments from fresh memory (the seeds' bug) is caught."""
    ratio_err, value_err, _ = recompute_errors(tiny_train_config("trxl"), zero_memory=True)
    assert max(ratio_err, value_err) > 1e-3


def test_iteration_does_not_retrace_and_updates_params():
    tc = tiny_train_config("trxl", ppo={"vtrace": True, "update_epochs": 2})
    tr = Trainer(tc)
    state = tr.init()
    p0 = state.params
    for _ in range(3):
        state, metrics = tr.run(state)
    assert tr.run._cache_size() == 1
    assert int(state.iteration) == 3
    delta = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), state.params, p0)
    assert max(jax.tree_util.tree_leaves(delta)) > 0
    for name in ("loss", "approx_kl", "clipfrac", "explained_variance", "lr", "ent_coef", "clip_coef", "vf_clip_coef"):
        assert np.isfinite(np.asarray(metrics[name])).all(), name


def test_run_seeds_trains_each_seed_as_its_own_run():
    """vmap over a stacked TrainState == one Trainer.run per seed (params, env carry and metrics, seed by seed)."""
    tr = Trainer(tiny_train_config("lstm", iterations_per_call=2))
    stacked, metrics = tr.run_seeds(tr.init_seeds([3, 7]))
    for i, seed in enumerate([3, 7]):
        single, single_metrics = tr.run(tr.init(seed))
        pick = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x[i]), tree)  # noqa: E731, B023
        for a, b in zip(jax.tree_util.tree_leaves(pick(stacked)), jax.tree_util.tree_leaves(single), strict=True):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pick(metrics)["loss"], np.asarray(single_metrics["loss"]), rtol=1e-5, atol=1e-6)
    first = jax.tree_util.tree_leaves(stacked.params)[0]
    assert not np.allclose(np.asarray(first[0]), np.asarray(first[1]))  # the seeds really differ


def test_bfloat16_run_takes_a_finite_step_with_float32_params():
    tc = tiny_train_config("trxl", policy={"dtype": "bfloat16"})
    tr = Trainer(tc)
    state = tr.init()
    new, metrics = tr.run(state)
    leaves = jax.tree_util.tree_leaves(new.params)
    assert all(x.dtype == jnp.float32 for x in leaves)
    assert all(bool(jnp.isfinite(x).all()) for x in leaves)
    assert np.isfinite(float(metrics["loss"][0]))
    changed = jax.tree_util.tree_map(lambda a, b: bool((a != b).any()), new.params, state.params)
    assert any(jax.tree_util.tree_leaves(changed))


def test_policy_heads_that_do_not_fit_the_env_are_a_clear_error():
    env = make_env("tmaze")
    pc = config.preset("slot", env.obs_dim, env.num_actions, base_dim=2, slot_dim=1)
    with pytest.raises(ValueError, match="action_dims"):
        Trainer(config.TrainConfig(policy=pc, rollout_steps=16, num_envs=4, ppo=config.PPOConfig(num_minibatches=1)))
    tc = tiny_slot_train_config("lstm")
    with pytest.raises(ValueError, match="policy_num_actions"):
        Trainer(tc.replace(policy=tc.policy.replace(num_actions=3)))
