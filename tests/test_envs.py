"""Tests of jax_tx.envs: interface, auto-reset semantics, memory bounds of the tasks, gymnax and host adapters."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_tx.envs import ENV_NAMES, INFO_KEYS, make_env
from jax_tx.envs.memory_tasks import FORWARD, LEFT, RIGHT, CountRecall, RepeatPrevious, TMaze

ALL_ENVS = [
    ("tmaze", {}),
    ("repeat_previous", {}),
    ("count_recall", {}),
    ("gymnax:CartPole-v1", {}),
    ("gymnax:MemoryChain-bsuite", {"memory_length": 7}),
    ("gymnax:Breakout-MinAtar", {}),
]


def rollout(env, policy, num_envs: int, steps: int, seed: int = 0):
    """Scan `steps` vmapped steps; policy(obs[N, D], t, carry) -> (actions[N], carry) with carry starting None-free.

    Returns the stacked (obs_before, actions, reward, terminated, truncated, info, obs_after) over time [T, N, ...].
    """
    keys = jax.random.split(jax.random.key(seed), num_envs)
    obs, state = jax.vmap(env.reset)(keys)

    def body(carry, t):
        obs, state, pcarry, key = carry
        key, step_key, act_key = jax.random.split(key, 3)
        actions, pcarry = policy(obs, t, pcarry, act_key)
        new_obs, state, reward, term, trunc, info = jax.vmap(env.step)(
            jax.random.split(step_key, num_envs), state, actions
        )
        return (new_obs, state, pcarry, key), (obs, actions, reward, term, trunc, info, new_obs)

    pcarry0 = jnp.zeros((num_envs, 4), jnp.float32)
    _, out = jax.jit(lambda c: jax.lax.scan(body, c, jnp.arange(steps)))(
        (obs, state, pcarry0, jax.random.key(seed + 1))
    )
    return jax.tree_util.tree_map(np.asarray, out)


def halves(first, second, n_first: int):
    """A policy applying `first` to envs [0, n_first) and `second` to the rest (one compile instead of two)."""

    def policy(obs, t, carry, key):
        action_1, carry_1 = first(obs, t, carry, key)
        action_2, carry_2 = second(obs, t, carry, key)
        rows = jnp.arange(obs.shape[0]) < n_first
        return jnp.where(rows, action_1, action_2), jnp.where(rows[:, None], carry_1, carry_2)

    return policy


def random_policy(num_actions):
    return lambda obs, t, c, key: (jax.random.randint(key, obs.shape[:1], 0, num_actions), c)


@pytest.mark.parametrize("name,kwargs", ALL_ENVS)
def test_jit_vmap_shapes_and_dtypes(name, kwargs):
    env = make_env(name, **kwargs)
    assert isinstance(env.obs_dim, int) and isinstance(env.num_actions, int) and isinstance(env.max_steps, int)
    assert env.name == name
    hash(env)  # usable as a static jit argument
    obs, act, reward, term, trunc, info, new_obs = rollout(env, random_policy(env.num_actions), 4, 30)
    assert obs.shape == (30, 4, env.obs_dim) and obs.dtype == np.float32
    assert reward.shape == (30, 4) and reward.dtype == np.float32
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert set(info) == set(INFO_KEYS)
    assert info["final_observation"].shape == (30, 4, env.obs_dim)
    assert info["success"].dtype == np.float32 and info["episode_length"].dtype == np.int32
    assert not np.any(term & trunc)
    done = term | trunc
    # Off episode ends the final observation is the returned observation; bookkeeping is zero.
    np.testing.assert_array_equal(info["final_observation"][~done], new_obs[~done])
    assert np.all(info["episode_length"][~done] == 0) and np.all(info["success"][~done] == 0)
    assert np.all(info["episode_length"][done] >= 1)


def test_names_and_errors():
    assert {"tmaze", "repeat_previous", "count_recall"} <= set(ENV_NAMES)
    with pytest.raises(ValueError, match="tmaze"):
        make_env("t-maze")
    with pytest.raises(ValueError, match="corridor_length"):
        make_env("tmaze", corridor_length=0)
    with pytest.raises(ValueError, match="max_steps"):
        make_env("tmaze", corridor_length=5, max_steps=3)
    with pytest.raises(ValueError, match="bad arguments"):
        make_env("tmaze", corridor=3)
    with pytest.raises(ValueError, match="exceed k"):
        make_env("repeat_previous", k=8, episode_length=8)
    with pytest.raises(ValueError, match="continuous"):
        make_env("gymnax:Pendulum-v1")
    with pytest.raises(ValueError, match="unknown gymnax env"):
        make_env("gymnax:NoSuchEnv-v0")
    with pytest.raises(ValueError, match="memory_length"):
        make_env("gymnax:MemoryChain-bsuite", memory_lenght=3)


def test_determinism_under_same_key():
    env = make_env("count_recall")
    reset, step = jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))
    actions = jnp.arange(8, dtype=jnp.int32) % env.num_actions

    def run(seed):
        keys = jax.random.split(jax.random.key(seed), 8)
        obs, state = reset(keys)
        return obs, step(keys, state, actions)

    jax.tree_util.tree_map(np.testing.assert_array_equal, run(3), run(3))
    assert not np.array_equal(run(3)[0], run(4)[0])


# ---------------------------------------------------------------- T-Maze


def tmaze_oracle(env: TMaze):
    """Remember the cue from the first observation (carry[:, 0:2]); forward until the junction, then turn to it."""

    def policy(obs, t, carry, key):
        cue_seen = obs[:, :2].sum(-1, keepdims=True) > 0
        carry = carry.at[:, :2].set(jnp.where(cue_seen, obs[:, :2], carry[:, :2]))
        turn = jnp.where(carry[:, 0] > 0, LEFT, RIGHT)
        return jnp.where(obs[:, 3] > 0, turn, FORWARD).astype(jnp.int32), carry

    return policy


def test_tmaze_auto_reset_and_final_observation():
    env = TMaze(corridor_length=3)
    obs, act, reward, term, trunc, info, new_obs = rollout(env, tmaze_oracle(env), 16, 8)
    # The first episode ends at step index 3 (3 forward moves, then the turn) in every env.
    assert np.all(term[3]) and not np.any(term[:3]) and not np.any(trunc)
    np.testing.assert_array_equal(info["final_observation"][3], np.tile([0.0, 0.0, 0.0, 1.0], (16, 1)))
    assert np.all(new_obs[3][:, :2].sum(-1) == 1)  # the fresh episode shows a cue
    np.testing.assert_array_equal(info["episode_length"][3], 4)
    np.testing.assert_array_equal(reward[3], 1.0)
    np.testing.assert_array_equal(info["success"][3], 1.0)
    np.testing.assert_array_equal(info["episode_return"][3], 1.0)
    # Cues appear only at episode starts, and both cues occur.
    assert np.all(obs[1:3, :, :2] == 0) and 0 < obs[0, :, 0].sum() < 16


def test_tmaze_time_limit_gives_truncated():
    env = TMaze(corridor_length=2, max_steps=6)
    _, _, reward, term, trunc, info, new_obs = rollout(env, lambda o, t, c, k: (jnp.zeros(3, jnp.int32), c), 3, 13)
    assert not term.any()
    np.testing.assert_array_equal(np.flatnonzero(trunc[:, 0]), [5, 11])
    np.testing.assert_array_equal(info["episode_length"][5], 6)
    np.testing.assert_array_equal(info["success"], 0.0)
    np.testing.assert_array_equal(info["final_observation"][5], np.tile([0.0, 0.0, 0.0, 1.0], (3, 1)))
    assert np.all(new_obs[5][:, :2].sum(-1) == 1)


@pytest.mark.parametrize("wait, turn_right", [(0, True), (2, True), (1, False)])
def test_tmaze_step_reward_is_paid_on_every_step_before_the_turn(wait, turn_right):
    """Scripted episode: corridor_length forward moves, `wait` no-op forwards at the junction, then a turn.
    Return = turn reward + step_reward * (corridor_length + wait), the steps before the turn."""
    env = TMaze(corridor_length=3, step_reward=-0.01, correct_reward=1.0, wrong_reward=-0.5)
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.key(1))
    cue_right = bool(obs[1] > 0)
    plan = [FORWARD] * (3 + wait) + [RIGHT if cue_right == turn_right else LEFT]
    rewards = []
    for a in plan:
        obs, state, reward, term, trunc, info = step(jax.random.key(0), state, jnp.int32(a))
        rewards.append(float(reward))
    assert bool(term) and not bool(trunc) and float(info["success"]) == float(turn_right)
    turn_reward = 1.0 if turn_right else -0.5
    assert rewards == [np.float32(-0.01)] * (3 + wait) + [turn_reward]
    expected = np.float32(turn_reward) + np.float32(-0.01) * (3 + wait)
    np.testing.assert_allclose(float(info["episode_return"]), expected, rtol=0, atol=1e-6)
    assert int(info["episode_length"]) == 4 + wait


def test_tmaze_step_reward_on_a_truncated_episode_and_its_validation():
    env = TMaze(corridor_length=2, max_steps=6, step_reward=-0.25)  # -0.25 is exact in float32
    _, _, reward, _, trunc, info, _ = rollout(env, lambda o, t, c, k: (jnp.zeros(2, jnp.int32), c), 2, 6)
    assert trunc[5].all() and np.all(reward == -0.25)
    np.testing.assert_array_equal(info["episode_return"][5], -1.5)
    assert TMaze().step_reward == 0.0
    for bad in (0.1, float("nan"), float("-inf")):
        with pytest.raises(ValueError, match="step_reward"):
            make_env("tmaze", step_reward=bad)


def obs_class(obs):
    """Memoryless view of a T-Maze observation: 0 cue left, 1 cue right, 2 corridor, 3 junction."""
    return jnp.where(obs[0] > 0, 0, jnp.where(obs[1] > 0, 1, jnp.where(obs[3] > 0, 3, 2)))


def first_episode_outcome(env: TMaze, action_probs, cue, key):
    """Success and return of the first episode with the cue fixed, under a memoryless policy probs[4, 3]."""
    obs, state = env.reset(key)
    state = state.replace(inner={"cue": jnp.int32(cue), "pos": jnp.int32(0)})
    obs = env._observe(jnp.int32(0)).at[cue].set(1.0)

    def body(carry, key):
        obs, state, ended, success, ret = carry
        key_act, key_step = jax.random.split(key)
        action = jax.random.choice(key_act, 3, p=action_probs[obs_class(obs)]).astype(jnp.int32)
        obs, state, reward, term, trunc, info = env.step(key_step, state, action)
        success = success + jnp.where(ended, 0.0, info["success"])
        ret = ret + jnp.where(ended, 0.0, reward)
        return (obs, state, ended | term | trunc, success, ret), None

    init = (obs, state, jnp.bool_(False), jnp.float32(0.0), jnp.float32(0.0))
    (_, _, _, success, ret), _ = jax.lax.scan(body, init, jax.random.split(key, env.max_steps))
    return success, ret


def test_tmaze_best_memoryless_policy_gets_half():
    """Exact enumeration of all 3^4 deterministic memoryless policies, both cues: the best success is 0.5."""
    env = TMaze(corridor_length=3)
    policies = jnp.asarray(list(itertools.product(range(3), repeat=4)))  # [81, 4] action per observation class
    probs = jax.nn.one_hot(policies, 3)
    one = functools.partial(first_episode_outcome, env)
    outcome = jax.jit(jax.vmap(jax.vmap(one, (None, 0, None)), (0, None, None)))
    success, ret = outcome(probs, jnp.arange(2), jax.random.key(0))  # deterministic: exact values
    mean_success, mean_return = np.asarray(success.mean(1)), np.asarray(ret.mean(1))
    assert mean_success.max() == 0.5 and mean_return.max() == 0.0
    best = policies[int(np.argmax(mean_success))]
    assert best[2] == FORWARD and best[3] in (LEFT, RIGHT)
    # Stochastic memoryless policies: per-cue successes sum to at most 1 (Monte Carlo, 2000 episodes per cue).
    keys = jax.random.split(jax.random.key(1), 2000)
    many = jax.jit(jax.vmap(jax.vmap(one, (None, 0, None)), (None, None, 0)))
    for probs_j in ([0.2, 0.8, 0.0], [0.1, 0.9, 0.0], [0.3, 0.3, 0.4]):
        stochastic = jnp.asarray([[0.6, 0.2, 0.2], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1], probs_j])
        success, _ = many(stochastic, jnp.arange(2), keys)
        assert float(success.mean()) <= 0.5 + 3 * 0.5 / np.sqrt(4000)


def test_tmaze_oracle_with_memory_succeeds():
    env = TMaze(corridor_length=5)
    _, _, reward, term, trunc, info, _ = rollout(env, tmaze_oracle(env), 64, 60)
    done = term | trunc
    assert not trunc.any() and done.sum() == 64 * 10
    np.testing.assert_array_equal(info["success"][done], 1.0)
    np.testing.assert_array_equal(info["episode_return"][done], 1.0)


# ---------------------------------------------------------------- RepeatPrevious / CountRecall


def test_repeat_previous_oracle_and_memoryless():
    env = RepeatPrevious(k=3, num_symbols=4, episode_length=12)

    def oracle(obs, t, carry, key):  # carry holds the last 4 symbols seen, newest first
        carry = jnp.concatenate([jnp.argmax(obs, -1)[:, None].astype(jnp.float32), carry[:, :3]], axis=1)
        return carry[:, env.k].astype(jnp.int32), carry

    # Envs 0..31 follow the oracle; envs 32.. repeat the current symbol (memoryless: right with probability 1/4,
    # expected return -0.5, no successes).
    echo = lambda obs, t, c, key: (jnp.argmax(obs, -1).astype(jnp.int32), c)  # noqa: E731
    _, _, reward, term, trunc, info, _ = rollout(env, halves(oracle, echo, 32), 288, 48)
    assert not trunc.any() and np.all(np.flatnonzero(term[:, 0]) == [11, 23, 35, 47])
    np.testing.assert_allclose(info["episode_return"][:, :32][term[:, :32]], 1.0, atol=1e-5)
    np.testing.assert_array_equal(info["success"][:, :32][term[:, :32]], 1.0)
    assert abs(info["episode_return"][:, 32:][term[:, 32:]].mean() + 0.5) < 0.05
    assert info["success"][:, 32:][term[:, 32:]].mean() < 0.01


def test_count_recall_oracle_and_memoryless():
    env = CountRecall(num_values=3, episode_length=10)

    def oracle(obs, t, counts, key):  # counts[:, :3] running counts of dealt values, zeroed at episode starts
        counts = jnp.where(t % env.episode_length == 0, 0.0, counts).at[:, :3].add(obs[:, :3])
        return jnp.sum(counts[:, :3] * obs[:, 3:], -1).astype(jnp.int32), counts

    # Envs 0..31 follow the oracle; envs 32.. guess from (dealt, query) alone: 1 if they match else 0.
    guess = lambda obs, t, c, key: (jnp.sum(obs[:, :3] * obs[:, 3:], -1).astype(jnp.int32), c)  # noqa: E731
    _, _, _, term, trunc, info, _ = rollout(env, halves(oracle, guess, 32), 288, 30)
    assert not trunc.any() and term.sum() == 288 * 3
    np.testing.assert_allclose(info["episode_return"][:, :32][term[:, :32]], 1.0, atol=1e-5)
    np.testing.assert_array_equal(info["success"][:, :32][term[:, :32]], 1.0)
    assert info["episode_return"][:, 32:][term[:, 32:]].mean() < 0.0
    assert info["success"][:, 32:][term[:, 32:]].mean() < 0.01


# ---------------------------------------------------------------- gymnax adapter


def test_gymnax_memory_chain_memory_length_and_success():
    env = make_env("gymnax:MemoryChain-bsuite", memory_length=6)
    assert env.params.memory_length == 6 and env.obs_dim == 3 and env.num_actions == 2

    def oracle(obs, t, carry, key):  # gymnax shows the context (+-1) in obs[2] at the episode start
        carry = carry.at[:, 0].set(jnp.where(obs[:, 2] != 0, obs[:, 2], carry[:, 0]))
        return (carry[:, 0] > 0).astype(jnp.int32), carry

    def wrong(obs, t, carry, key):
        action, carry = oracle(obs, t, carry, key)
        return 1 - action, carry

    _, _, reward, term, trunc, info, _ = rollout(env, halves(oracle, wrong, 8), 16, 21)  # envs 8.. answer wrong
    assert not trunc.any() and np.array_equal(np.flatnonzero(term[:, 0]), [6, 13, 20])  # episodes of L + 1 steps
    np.testing.assert_array_equal(info["episode_length"][term], 7)
    np.testing.assert_array_equal(info["success"][:, :8][term[:, :8]], 1.0)
    np.testing.assert_array_equal(reward[:, :8][term[:, :8]], 1.0)
    np.testing.assert_array_equal(info["success"][:, 8:][term[:, 8:]], 0.0)
    np.testing.assert_array_equal(reward[:, 8:][term[:, 8:]], -1.0)


def test_gymnax_cartpole_time_limit_through_params():
    env = make_env("gymnax:CartPole-v1", max_steps_in_episode=10, success_return=10.0)
    assert env.max_steps == 10
    alternate = lambda obs, t, c, key: (jnp.full(obs.shape[:1], t % 2, jnp.int32), c)  # noqa: E731
    _, _, reward, term, trunc, info, new_obs = rollout(env, alternate, 4, 20)
    assert not term.any() and np.array_equal(np.flatnonzero(trunc[:, 0]), [9, 19])
    np.testing.assert_array_equal(info["episode_return"][9], 10.0)
    np.testing.assert_array_equal(info["success"][9], 1.0)
    assert not np.allclose(info["final_observation"][9], new_obs[9])


# ---------------------------------------------------------------- host adapter


def test_host_adapter_cartpole():
    from jax_tx.envs.host_adapter import HostVectorEnv, collect

    env = HostVectorEnv("CartPole-v1", num_envs=4, seed=0, max_episode_steps=15)
    assert (env.obs_dim, env.num_actions, env.max_steps, env.success_return) == (4, 2, 15, 475.0)
    obs = env.reset()
    assert obs.shape == (4, 4) and obs.dtype == np.float32

    @jax.jit
    def policy_step(count, obs, first, key):  # alternate actions; count steps per env
        count = jnp.where(first, 0, count) + 1
        return count, (count % 2).astype(jnp.int32), {"count": count}

    traj, count, obs, first, _ = collect(
        env, policy_step, jnp.zeros(4, jnp.int32), obs, np.ones(4, bool), jax.random.key(0), 40
    )
    assert traj["obs"].shape == (40, 4, 4) and traj["actions"].shape == (40, 4)
    done = traj["terminated"] | traj["truncated"]
    assert not np.any(traj["terminated"] & traj["truncated"]) and traj["truncated"].any()
    np.testing.assert_array_equal(traj["episode_length"][done], traj["count"][done])
    np.testing.assert_array_equal(traj["episode_return"][done], traj["count"][done].astype(np.float32))
    assert np.all(traj["episode_length"][traj["truncated"]] == 15) and not traj["success"].any()
    np.testing.assert_array_equal(traj["first"][1:], done[:-1])
    nd = ~done
    np.testing.assert_array_equal(traj["final_observation"][:-1][nd[:-1]], traj["obs"][1:][nd[:-1]])
    ended = done[:-1]  # where an episode ended, the next obs is a fresh start, not the final observation
    assert np.all(np.abs(traj["final_observation"][:-1][ended] - traj["obs"][1:][ended]).max(-1) > 0)
    env.close()


def test_host_adapter_rejects_next_step_autoreset():
    import gymnasium

    from jax_tx.envs.host_adapter import HostVectorEnv

    vec = gymnasium.make_vec("CartPole-v1", 2, vectorization_mode="sync")  # Gymnasium's default: NEXT_STEP
    with pytest.raises(ValueError, match="SAME_STEP"):
        HostVectorEnv(vec)
    vec.close()
