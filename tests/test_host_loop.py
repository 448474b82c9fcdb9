"""PPO against host (numpy) envs, jax_tx/ppo/host_loop.py: the stored segments reproduce the rollout exactly.

A fake token env (numpy, no mettagrid) with episodes that end by termination on some rows and truncation on
others, in two interleaved groups: recomputing every segment in sequence mode from the stored memory gives the
rollout's log-probs and values, so the memory at segment starts, the reset flags and the group order are right.
"""

from __future__ import annotations

import numpy as np
import pytest

from jax_tx.config import PPOConfig, TrainConfig, preset

TOKENS = 6


class FakeTokenEnv:
    """rows x uint8 [TOKENS, 3] random tokens (last two padding); row r's episodes last 3 + r % 4 steps and end
    by termination on even rows, truncation on odd rows; reward = (action == obs[0, 2] % 3)."""

    def __init__(self, num_envs: int, seed: int):
        self.num_envs, self.obs_dim, self.num_actions, self.name = num_envs, TOKENS, 3, "fake_tokens"
        self.max_steps = 6
        self.obs_dtype = np.uint8
        self._rng = np.random.default_rng(seed)
        self._t = np.zeros(num_envs, np.int32)
        self._ret = np.zeros(num_envs, np.float32)

    def _obs(self) -> np.ndarray:
        obs = self._rng.integers(0, 11, (self.num_envs, TOKENS, 3)).astype(np.uint8)
        obs[..., 0] = obs[..., 0] * 16 + self._rng.integers(0, 11, (self.num_envs, TOKENS))
        obs[:, -2:] = 0xFF
        return obs

    def reset(self, seed=None) -> np.ndarray:
        self._t[:] = 0
        self._ret[:] = 0
        self._last = self._obs()
        return self._last

    def step(self, actions):
        reward = (np.asarray(actions) == self._last[:, 0, 2] % 3).astype(np.float32)
        self._t += 1
        self._ret += reward
        done = self._t >= 3 + np.arange(self.num_envs) % 4
        even = np.arange(self.num_envs) % 2 == 0
        obs = self._obs()
        info = {
            "final_observation": obs.copy(),
            "success": (done & (self._ret > 1)).astype(np.float32),
            "episode_return": np.where(done, self._ret, 0.0).astype(np.float32),
            "episode_length": np.where(done, self._t, 0).astype(np.int32),
        }
        obs[done] = self._obs()[done]
        self._t[done] = 0
        self._ret[done] = 0
        self._last = obs
        return obs, reward, done & even, done & ~even, info

    def close(self):
        pass


def _tcfg(num_envs: int, **policy) -> TrainConfig:
    cfg = preset(
        "gtrxl", TOKENS, 3, encoder="tokens", d_model=16, num_layers=1, num_heads=2, d_ff=16, memory_len=4,
        actor_hidden=16, critic_hidden=16, token_num_latents=2, token_num_heads=2, **policy,
    )  # fmt: skip
    ppo = PPOConfig(bptt_horizon=4, num_minibatches=2, update_epochs=1)
    return TrainConfig(policy=cfg, ppo=ppo, env="fake_tokens", num_envs=num_envs, rollout_steps=8, total_steps=64)


@pytest.fixture(scope="module")
def trainer_and_batch():
    from jax_tx.ppo.host_loop import HostTrainer

    trainer = HostTrainer(_tcfg(4), [FakeTokenEnv(2, seed=1), FakeTokenEnv(2, seed=2)])
    state = trainer.init()
    rows, carries, _ = trainer.collect(state.params, list(state.carries), state.key, 8)
    return trainer, state, rows, carries


def test_segments_reproduce_rollout_logp_and_value(trainer_and_batch):
    import jax
    import jax.numpy as jnp

    from jax_tx.ppo.update import forward, make_segments

    trainer, state, rows, _ = trainer_and_batch
    trs, seg_mem, _ = trainer.batch(rows)
    assert trs.obs.shape == (8, 4, TOKENS, 3) and trs.obs.dtype == jnp.uint8
    assert bool(trs.terminated.any()) and bool(trs.truncated.any())
    assert not bool((trs.terminated & trs.truncated).any())
    # reset at t is done at t-1, and the very first step
    done = np.asarray(trs.terminated | trs.truncated)
    np.testing.assert_array_equal(np.asarray(trs.reset)[1:], done[:-1])
    assert bool(np.asarray(trs.reset)[0].all())
    zeros = jnp.zeros_like(trs.value)
    seg = make_segments(trs, seg_mem, zeros, zeros, trainer.ppo.bptt_horizon)
    logits, values = forward(trainer.model, state.params, trainer.cfg, seg)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), seg.action[..., None], axis=-1)[..., 0]
    assert float(jnp.max(jnp.abs(logp - seg.logp))) <= 1e-5
    assert float(jnp.max(jnp.abs(values - seg.value))) <= 1e-5


def test_truncated_value_only_on_truncation(trainer_and_batch):
    trainer, _, rows, _ = trainer_and_batch
    trs, _, _ = trainer.batch(rows)
    tv, trunc = np.asarray(trs.truncated_value), np.asarray(trs.truncated)
    assert trunc.any() and np.all(tv[trunc] != 0.0)
    for g in (slice(0, 2), slice(2, 4)):  # computed (for the group's rows) only at steps where one truncated
        quiet = ~trunc[:, g].any(axis=1)
        assert quiet.any() and np.all(tv[quiet][:, g] == 0.0)


def test_iteration_updates_params_and_counts_episodes(trainer_and_batch):
    import jax

    trainer = trainer_and_batch[0]
    state = trainer.init()  # resets the envs; the jitted policy step is reused
    new, metrics = trainer.iteration(state)
    # rows 0, 1 of each group: episodes of 3 and 4 steps -> 8 steps give 2 + 2 episodes per group
    assert metrics["episodes"] == 8.0
    assert np.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    diff = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), state.params,
                                  new.params)  # fmt: skip
    assert max(jax.tree_util.tree_leaves(diff)) > 0
    assert int(new.iteration) == 1
    assert all(trainer.timers[k] > 0 for k in ("env", "policy", "update"))


def test_rows_must_match_num_envs():
    from jax_tx.ppo.host_loop import HostTrainer

    with pytest.raises(ValueError, match="hold 2 rows but num_envs=4"):
        HostTrainer(_tcfg(4), [FakeTokenEnv(2, seed=1)])
    flat = FakeTokenEnv(4, seed=1)
    flat.obs_dtype = np.float32
    with pytest.raises(ValueError, match="gives flat float observations but the policy has encoder='tokens'"):
        HostTrainer(_tcfg(4), [flat])


def test_greedy_evaluate_counts_finished_episodes(trainer_and_batch):
    trainer, state = trainer_and_batch[:2]
    ev = trainer.evaluate(state.params, FakeTokenEnv(4, seed=5), steps=8)
    # rows of 3, 4, 5, 6 steps: 2 + 2 + 1 + 1 episodes end within 8 steps
    assert ev["episodes"] == 6
    assert 0.0 <= ev["episode_return"] <= 6.0 and 0.0 <= ev["success"] <= 1.0
