"""Tests of jax_tx.envs.xminigrid_adapter on xminigrid 0.9.3's MiniGrid-MemoryS8 / S16.

MiniGrid-Memory: the agent starts in a corridor facing right, a cue object (ball or key) sits in the room behind it;
at the corridor's end one cell up and one cell down lead to a ball and a key. Stepping onto the cell next to the
cue's twin pays 1 - 0.9 * t / max_steps and ends the episode; the other cell ends it with reward 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

xminigrid = pytest.importorskip("xminigrid", reason="xminigrid is not installed (pip install 'xminigrid==0.9.3')")

from jax_tx.envs import INFO_KEYS, make_env  # noqa: E402

S8 = "xminigrid:MiniGrid-MemoryS8"
FORWARD, TURN_RIGHT, TURN_LEFT = 0, 1, 2


def rollout(env, policy, num_envs: int, steps: int, seed: int = 0) -> dict:
    """Scan `steps` vmapped steps; policy(obs[N, D], state, key) -> actions[N] may read the (privileged) env state.

    Returns numpy arrays stacked over [T, N]: obs0 (the reset observations [N, D]), obs (returned by each step),
    reward, terminated, truncated, info (dict), time (the returned state's step count).
    """
    obs, state = jax.vmap(env.reset)(jax.random.split(jax.random.key(seed), num_envs))

    def body(carry, _):
        obs, state, key = carry
        key, step_key, act_key = jax.random.split(key, 3)
        actions = policy(obs, state, act_key)
        new_obs, new_state, reward, term, trunc, info = jax.vmap(env.step)(
            jax.random.split(step_key, num_envs), state, actions
        )
        out = {"obs": new_obs, "reward": reward, "terminated": term, "truncated": trunc, "info": info}
        return (new_obs, new_state, key), {**out, "time": new_state.time}

    _, out = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))((obs, state, jax.random.key(seed + 1)))
    return jax.tree_util.tree_map(np.asarray, {**out, "obs0": obs})


def walk_to(target: str):
    """Privileged scripted policy: forward along the corridor, then turn to carry.<target>_pos's row and step on it.

    direction: 0 up, 1 right, 2 down, 3 left; turn right d -> d + 1, turn left d -> d - 1 (mod 4).
    """

    def policy(obs, state, key):
        agent, carry = state.inner.state.agent, state.inner.state.carry
        goal = getattr(carry, f"{target}_pos")
        at_end = agent.position[:, 1] == goal[:, 1]
        want = jnp.where(goal[:, 0] < agent.position[:, 0], 0, 2)
        turn = jnp.where(want == 0, TURN_LEFT, TURN_RIGHT)
        facing = jnp.where(at_end, agent.direction == want, agent.direction == 1)
        return jnp.where(facing, FORWARD, turn).astype(jnp.int32)

    return policy


def random_policy(obs, state, key):
    return jax.random.randint(key, obs.shape[:1], 0, 6)


# One compiled rollout serves the rollout tests: rows [0, 8) walk to the matching object, [8, 16) to the other one,
# [16, 80) act uniformly at random; 1000 steps on S8 (time limit 320).
WIN, LOSE, RANDOM = slice(0, 8), slice(8, 16), slice(16, 80)
STEPS = 1000


@pytest.fixture(scope="module")
def mixed():
    env = make_env(S8)

    def policy(obs, state, key):
        row = jnp.arange(obs.shape[0])
        win, lose = walk_to("success")(obs, state, key), walk_to("failure")(obs, state, key)
        return jnp.where(row < 8, win, jnp.where(row < 16, lose, random_policy(obs, state, key)))

    return env, rollout(env, policy, 80, STEPS)


def test_shapes_encoding_and_names():
    env = make_env(S8)
    assert env.name == S8 and (env.obs_dim, env.num_actions, env.max_steps) == (3 * 3 * 14, 6, 5 * 8**2)
    hash(env)
    obs, state = jax.jit(env.reset)(jax.random.key(0))
    assert obs.shape == (env.obs_dim,) and obs.dtype == jnp.float32
    cells = np.asarray(obs).reshape(3, 3, 14)
    view = np.asarray(state.inner.observation)
    np.testing.assert_array_equal(cells[..., :13].sum(-1), 1.0)  # one tile type per cell
    np.testing.assert_array_equal(cells[..., :13].argmax(-1), view[..., 0])
    np.testing.assert_allclose(cells[..., 13] * 11, view[..., 1], atol=1e-6)
    s16 = make_env("xminigrid:MiniGrid-MemoryS16")  # built, not rolled out here (one more compile, ~5 s)
    assert (s16.obs_dim, s16.max_steps, s16.params.width) == (126, 5 * 16**2, 16)
    ids = make_env(S8, encoding="ids")
    obs_ids, _ = ids.reset(jax.random.key(0))
    assert ids.obs_dim == 18
    np.testing.assert_allclose(np.asarray(obs_ids).reshape(3, 3, 2) * [12, 11], view, atol=1e-5)
    with pytest.raises(ValueError, match="unknown xminigrid env"):
        make_env("xminigrid:MiniGrid-MemoryS8-v0")
    with pytest.raises(ValueError, match="view_size"):
        make_env(S8, view_szie=5)
    with pytest.raises(ValueError, match="positive int"):
        make_env(S8, max_steps=0)
    with pytest.raises(ValueError, match="encoding"):
        make_env(S8, encoding="onehot")


def test_jit_vmap_info_and_auto_reset(mixed):
    env, r = mixed
    term, trunc, info, obs = r["terminated"], r["truncated"], r["info"], r["obs"]
    assert obs.shape == (STEPS, 80, env.obs_dim) and obs.dtype == np.float32 and r["reward"].dtype == np.float32
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_ and set(info) == set(INFO_KEYS)
    assert info["success"].dtype == np.float32 and info["episode_length"].dtype == np.int32
    assert not (term & trunc).any()
    done = term | trunc
    np.testing.assert_array_equal(r["time"][done], 0)  # the returned state is a fresh episode's
    np.testing.assert_array_equal(r["time"][1:][~done[1:]], r["time"][:-1][~done[1:]] + 1)
    np.testing.assert_array_equal(info["final_observation"][~done], obs[~done])
    assert (info["final_observation"][done] != obs[done]).any(axis=-1).mean() > 0.5  # reset obs replaced it
    np.testing.assert_array_equal(info["episode_length"][~done], 0)
    # scripted walkers: at most 5 corridor cells + 1 turn + 1 step per episode, so they restart many times
    walkers = term[:, :16]
    assert not trunc[:, :16].any() and (walkers.sum(0) >= 100).all()
    assert np.all(info["episode_length"][:, :16][walkers] >= 2) and np.all(info["episode_length"][:, :16][walkers] <= 7)


def test_success_only_with_positive_reward(mixed):
    env, r = mixed
    term, reward, info = r["terminated"], r["reward"], r["info"]
    win, lose = term[:, WIN], term[:, LOSE]
    np.testing.assert_array_equal(info["success"][:, WIN][win], 1.0)
    length = info["episode_length"][:, WIN][win]
    np.testing.assert_allclose(reward[:, WIN][win], 1.0 - 0.9 * length / env.max_steps, rtol=1e-6)
    np.testing.assert_array_equal(info["success"][:, LOSE][lose], 0.0)
    np.testing.assert_array_equal(reward[:, LOSE][lose], 0.0)
    np.testing.assert_array_equal(reward[~term], 0.0)
    np.testing.assert_array_equal(info["success"][~term], 0.0)
    np.testing.assert_array_equal(info["success"][term], (reward[term] > 0).astype(np.float32))
    np.testing.assert_array_equal(info["episode_return"][term], reward[term])  # one reward per episode, at its end


def test_time_limit_truncates_without_success(mixed):
    env, r = mixed
    trunc, info = r["truncated"], r["info"]
    assert env.max_steps == 320 and make_env(S8, max_steps=10).max_steps == 10
    assert trunc[:, RANDOM].sum() >= 50
    np.testing.assert_array_equal(info["episode_length"][trunc], env.max_steps)
    np.testing.assert_array_equal(info["success"][trunc], 0.0)
    np.testing.assert_array_equal(info["episode_return"][trunc], 0.0)


def test_random_policy_success_is_low(mixed):
    """A uniform random policy: many episodes hit the time limit, the rest end at an object picked by chance.

    Measured (xminigrid 0.9.3, S8, 64 envs x 1000 steps): ~290 episodes, success ~0.28 of all episodes and ~0.5 of
    the terminated ones.
    """
    _, r = mixed
    term, trunc, success = r["terminated"][:, RANDOM], r["truncated"][:, RANDOM], r["info"]["success"][:, RANDOM]
    episodes, wins = (term | trunc).sum(), success.sum()
    rate, rate_terminated = wins / episodes, wins / term.sum()
    print(f"random policy on {S8}: {episodes} episodes, success {rate:.3f}, of terminated {rate_terminated:.3f}")
    assert episodes >= 200
    assert rate <= 0.4
    assert 0.35 <= rate_terminated <= 0.65


def test_trainer_smoke_mlp():
    from jax_tx import config
    from jax_tx.ppo.trainer import Trainer

    env = make_env(S8)
    pc = config.preset("mlp", env.obs_dim, env.num_actions, actor_hidden=16, critic_hidden=16)
    ppo = config.PPOConfig(bptt_horizon=8, num_minibatches=1, update_epochs=1)
    tc = config.TrainConfig(policy=pc, ppo=ppo, env=S8, num_envs=4, rollout_steps=8, total_steps=3 * 4 * 8,
                            iterations_per_call=3)  # fmt: skip
    tr = Trainer(tc)
    state, metrics = tr.run(tr.init())
    assert int(state.iteration) == 3
    for k in ("episodes", "success", "episode_return"):
        assert k in metrics
    assert np.asarray(metrics["episodes"]).sum() > 0
    assert all(np.isfinite(np.asarray(v)).all() for k, v in metrics.items() if k not in ("success", "episode_return"))
