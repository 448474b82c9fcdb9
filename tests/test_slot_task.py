"""The slot_select env and factored action heads: layout, optimum, memory version, masks, head maths."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_tx import config
from jax_tx.envs import make_env
from jax_tx.models.policy import example_inputs, initial_memory, make_policy
from jax_tx.ppo import heads
from jax_tx.ppo.loss import log_prob_entropy


def play(env, choose, num_envs: int = 64, steps: int = 24, seed: int = 0):
    """Roll num_envs envs with choose(key, state) -> action [B, 2]; returns stacked obs, masks, info."""
    obs, state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(seed), num_envs))

    def step(c, k):
        obs, state = c
        k_act, k_env = jax.random.split(k)
        mask = jax.vmap(env.action_mask)(state)
        action = choose(k_act, state, mask)
        nobs, nstate, reward, term, trunc, info = jax.vmap(env.step)(jax.random.split(k_env, num_envs), state, action)
        return (nobs, nstate), (obs, mask, action, jax.vmap(env.answer)(state.inner), reward, term | trunc, info)

    _, out = jax.lax.scan(step, (obs, state), jax.random.split(jax.random.PRNGKey(seed + 1), steps))
    return jax.tree_util.tree_map(np.asarray, out)


def oracle(env):
    return lambda k, state, mask: jnp.stack(jax.vmap(env.answer)(state.inner), axis=-1)


@pytest.mark.parametrize("memory", [False, True])
def test_layout_optimum_and_masks(memory):
    env = make_env("slot_select", num_slots=6, min_active=2, max_active=5, episode_length=4, memory=memory)
    assert env.obs_dim == env.base_dim + 6 * env.slot_dim and env.action_dims == (3, 6)
    obs, mask, action, (right_type, right_slot), reward, done, info = play(env, oracle(env))
    slots = obs[..., env.base_dim :].reshape(*obs.shape[:2], 6, env.slot_dim)
    active = slots[..., 0] > 0.5
    assert active.sum(-1).min() == 2 and active.sum(-1).max() == 5  # the number of active slots varies
    np.testing.assert_array_equal(slots[~active], 0.0)  # inactive slots are all zeros
    np.testing.assert_array_equal(mask[..., 3:], active)  # the slot head's mask is the active flag
    # the right answers are legal, and they are what the features say they are
    assert mask[..., :3][np.arange(24)[:, None], np.arange(64), right_type].all()
    assert active[np.arange(24)[:, None], np.arange(64), right_slot].all()
    u, types = slots[..., -1], slots[..., 1:4].argmax(-1)
    np.testing.assert_array_equal(
        right_type, np.take_along_axis(types, np.argmax(np.where(active, u, -1), -1)[..., None], -1)[..., 0]
    )
    # the optimum: every finished episode returns exactly 1 and succeeds
    assert done.sum() >= 64 * 5
    np.testing.assert_allclose(info["episode_return"][done], 1.0, atol=1e-6)
    np.testing.assert_array_equal(info["success"][done], 1.0)
    # the query is shown on the first step of an episode only in the memory version
    first = obs[..., env.base_dim - 1] > 0.5
    query_shown = obs[..., : env.base_dim - 1].sum(-1) > 0
    np.testing.assert_array_equal(query_shown, first if memory else np.ones_like(first))


def test_masked_actions_are_never_sampled_and_have_probability_zero():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    logits = (3.0 * jax.random.normal(k1, (1024, 5)), 3.0 * jax.random.normal(k2, (1024, 7)))
    mask = jax.random.bernoulli(jax.random.PRNGKey(2), 0.4, (1024, 12)).at[:, [0, 5]].set(True)
    actions, logp = heads.select_actions(jax.random.PRNGKey(3), logits, mask)
    assert actions.shape == (1024, 2)
    legal = [np.asarray(m) for m in heads.split_masks(mask, logits)]
    for k in range(2):
        assert legal[k][np.arange(1024), np.asarray(actions[:, k])].all()  # never a masked action
        probs = jax.nn.softmax(heads.masked(logits, heads.split_masks(mask, logits))[k])
        assert float(jnp.abs(jnp.where(legal[k], 0.0, probs)).max()) == 0.0  # exactly 0, not small
    lp, ent, per_head = heads.log_prob_entropy(logits, actions, mask)
    np.testing.assert_allclose(np.asarray(lp), np.asarray(logp), atol=1e-6)
    assert np.isfinite(np.asarray(ent)).all() and len(per_head) == 2
    np.testing.assert_allclose(np.asarray(ent), np.asarray(per_head[0] + per_head[1]), atol=1e-6)
    # the gradient never reaches a masked logit
    g = jax.grad(lambda ls: heads.log_prob_entropy(ls, actions, mask)[1].sum())(logits)
    assert float(jnp.abs(jnp.where(legal[1], 0.0, g[1])).max()) == 0.0


def test_one_unmasked_head_is_bit_identical_to_the_single_head_code():
    logits = jax.random.normal(jax.random.PRNGKey(0), (6, 5, 4))
    actions = jax.random.randint(jax.random.PRNGKey(1), (6, 5), 0, 4)
    lp, ent, _ = heads.log_prob_entropy(logits, actions, jnp.zeros((6, 5, 0), bool))
    ref_lp, ref_ent = log_prob_entropy(logits, actions)
    np.testing.assert_array_equal(np.asarray(lp), np.asarray(ref_lp))
    np.testing.assert_array_equal(np.asarray(ent), np.asarray(ref_ent))
    a, _ = heads.select_actions(jax.random.PRNGKey(4), logits[0], None)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(jax.random.categorical(jax.random.PRNGKey(4), logits[0])))


def test_a_head_with_nothing_legal_is_a_clear_error():
    logits = (jnp.zeros((3, 2)), jnp.zeros((3, 4)))
    mask = jnp.ones((3, 6), bool).at[1, 2:].set(False)  # env 1: the slot head has no legal action
    with pytest.raises(heads.ActionMaskError, match=r"head\(s\) \[1\] with no legal action"):
        heads.select_actions(jax.random.PRNGKey(0), logits, mask)
    jitted = jax.jit(lambda m: heads.select_actions(jax.random.PRNGKey(0), logits, m)[0])
    assert jitted(jnp.ones((3, 6), bool)).shape == (3, 2)
    with pytest.raises(Exception, match="no legal action"):
        jax.block_until_ready(jitted(mask))


def test_one_slot_policy_acts_at_3_and_50_slots_with_the_weights_built_at_10():
    env10 = make_env("slot_select", num_slots=10)
    pc = config.preset(
        "slot", env10.obs_dim, env10.num_actions, base_dim=env10.base_dim, slot_dim=env10.slot_dim,
        d_model=16, num_layers=1, num_heads=2, d_ff=32, lstm_hidden=16,
    )  # fmt: skip
    params = make_policy(pc).init(jax.random.PRNGKey(0), *example_inputs(pc, 1, 1))
    for n in (3, 50):
        env = make_env("slot_select", num_slots=n)
        obs, state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(n), 8))
        cfg = pc.replace(obs_dim=env.obs_dim)
        apply = jax.jit(make_policy(cfg).apply)
        out, _ = apply(params, obs[:, None], jnp.ones((8, 1), bool), initial_memory(cfg, 8))
        logits = jax.tree_util.tree_map(lambda x: x[:, 0], out.logits)
        assert [x.shape for x in logits] == [(8, 3), (8, n)]
        actions, _ = heads.select_actions(jax.random.PRNGKey(1), logits, jax.vmap(env.action_mask)(state))
        assert bool(state.inner["active"][jnp.arange(8), actions[:, 1]].all())  # only active slots are chosen


def test_slot_remat_gives_the_same_outputs_and_gradients():
    env = make_env("slot_select", num_slots=6)
    pc = config.preset(
        "slot", env.obs_dim, env.num_actions, base_dim=env.base_dim, slot_dim=env.slot_dim,
        d_model=16, num_layers=2, num_heads=2, d_ff=32, lstm_hidden=16,
    )  # fmt: skip
    obs = jax.random.uniform(jax.random.PRNGKey(0), (2, 3, env.obs_dim))
    obs = obs.at[..., env.base_dim :: env.slot_dim].set(jnp.round(obs[..., env.base_dim :: env.slot_dim]))
    reset = jnp.zeros((2, 3), bool).at[:, 0].set(True)
    mem = initial_memory(pc, 2)
    params = make_policy(pc).init(jax.random.PRNGKey(1), obs, reset, mem)

    def loss(p, cfg):
        out, _ = make_policy(cfg).apply(p, obs, reset, mem)
        return sum(jnp.sum(jnp.sin(x)) for x in out.logits) + jnp.sum(out.value**2)

    value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)

    remat = pc.replace(slot_remat=True)
    assert jax.tree_util.tree_structure(make_policy(remat).init(jax.random.PRNGKey(1), obs, reset, mem)) == (
        jax.tree_util.tree_structure(params)
    )
    (v0, g0), (v1, g1) = (value_and_grad(params, c) for c in (pc, remat))
    np.testing.assert_array_equal(np.asarray(v0), np.asarray(v1))
    diff = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), g0, g1)
    assert max(jax.tree_util.tree_leaves(diff)) <= 1e-6
    assert max(float(jnp.abs(x).max()) for x in jax.tree_util.tree_leaves(g0)) > 1e-3
