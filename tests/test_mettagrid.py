"""The mettagrid adapter (jax_tx/envs/mettagrid_adapter.py) and arena (mettagrid_arena.py).

Skipped only where mettagrid is absent (it lives in its own venv: `make install-mettagrid`; `make test` runs this
file there too).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mettagrid")

from jax_tx.config import preset  # noqa: E402
from jax_tx.envs.mettagrid_adapter import MettaGridVecEnv  # noqa: E402
from jax_tx.envs.mettagrid_arena import arena_config  # noqa: E402
from jax_tx.models.checks import check_token_values  # noqa: E402

W, E = "wall", "empty"


def scripted_env(max_steps: int, shaped: bool) -> MettaGridVecEnv:
    """One agent with the altar north, a mine west and a generator east of it."""
    from mettagrid.test_support.map_builders import ObjectNameMapBuilderConfig

    cfg = arena_config(num_agents=1, max_steps=max_steps, shaped=shaped)
    grid = [[W] * 5, [W, E, "altar", E, W], [W, "mine", "agent.agent", "generator", W], [W, E, E, E, W], [W] * 5]
    cfg.game.map_builder = ObjectNameMapBuilderConfig(map_data=grid)
    return MettaGridVecEnv(config=cfg, num_maps=1)


@pytest.mark.parametrize("shaped", [False, True])
def test_heart_chain_gives_reward_then_truncation_resets(shaped):
    env = scripted_env(max_steps=6, shaped=shaped)
    obs0 = env.reset()
    ids = {name: i for i, name in enumerate(env.action_names)}
    plan = ["move_east", "move_north", "move_west", "move_east", "move_north", "noop"]
    out = [env.step([ids[a]]) for a in plan]
    rewards = [float(o[1][0]) for o in out]
    # generator / altar do nothing without ore / battery; mine -> ore, generator -> battery, altar -> heart
    # shaped: phi = heart + min(0.1 ore, 0.1) + min(0.8 battery, 0.8), reward = phi_t - phi_{t-1}
    expected = [0.0, 0.0, 0.1, 0.7, 0.2, 0.0] if shaped else [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    np.testing.assert_allclose(rewards, expected, atol=1e-6)
    for _, _, term, trunc, info in out[:-1]:
        assert not term[0] and not trunc[0] and info["episode_length"][0] == 0
    obs, _, term, trunc, info = out[-1]
    assert not term[0] and trunc[0]  # the time limit is a truncation (episode_truncates)
    assert info["episode_return"][0] == pytest.approx(1.0, abs=1e-6) and info["episode_length"][0] == 6
    assert info["success"][0] == 1.0
    assert not np.array_equal(info["final_observation"], obs)  # obs is the next episode's first observation
    np.testing.assert_array_equal(obs, obs0)  # same map, fresh inventory
    _, reward, _, _, info = env.step([ids["move_north"]])  # the new episode starts without a battery
    assert reward[0] == 0.0 and info["episode_length"][0] == 0
    env.close()


def test_agents_are_rows_and_tokens_pass_through_unchanged():
    env = MettaGridVecEnv(num_maps=2, seed=3, num_agents=3, size=7, walls=1, obs_window=7, num_tokens=48)
    obs = env.reset()
    assert env.num_envs == 6 and obs.shape == (6, 48, 3) and obs.dtype == np.uint8
    for m, sim in enumerate(env._sims):
        np.testing.assert_array_equal(obs[3 * m : 3 * m + 3], sim._c_sim.observations())
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, reward, *_ = env.step(rng.integers(0, env.num_actions, env.num_envs))
        for m, sim in enumerate(env._sims):
            np.testing.assert_array_equal(obs[3 * m : 3 * m + 3], sim._c_sim.observations())
            np.testing.assert_array_equal(reward[3 * m : 3 * m + 3], sim._c_sim.rewards())
    pad = obs[..., 0] == 0xFF
    assert pad.any() and (~pad).any() and np.all(obs[pad] == 0xFF)
    assert np.any(obs[..., 0] == 0xFE)  # the global (self) tokens keep their location byte
    cfg = preset("gtrxl", **env.policy_overrides())
    assert (cfg.encoder, cfg.obs_dim, cfg.num_actions, cfg.token_grid_size) == ("tokens", 48, 5, 16)
    check_token_values(cfg, obs)  # every token fits the encoder's grid and attribute table
    env.close()


def test_all_maps_truncate_together_and_reset_to_new_maps():
    env = MettaGridVecEnv(num_maps=2, seed=0, num_agents=2, size=7, walls=1, max_steps=4, num_tokens=48)
    first = env.reset()
    for t in range(4):
        obs, _, term, trunc, info = env.step(np.zeros(env.num_envs, np.int64))
        assert not term.any()
        assert trunc.all() == (t == 3) and trunc.any() == (t == 3)
    assert np.all(info["episode_length"] == 4)
    assert not np.array_equal(obs, first)  # seeds 2 and 3: other maps
    assert env._next_seed == 4
    env.close()


def test_bad_arena_and_actions_name_the_fix():
    with pytest.raises(ValueError, match="lower the counts or raise size"):
        arena_config(num_agents=4, size=3)
    env = MettaGridVecEnv(num_maps=1, num_agents=1, size=5, walls=0, num_tokens=48)
    with pytest.raises(RuntimeError, match="call env.reset"):
        env.step([0])
    env.reset()
    with pytest.raises(ValueError, match=r"actions must be in \[0, 5\)"):
        env.step([7])
    env.close()


def test_same_seed_same_maps_and_dynamics():
    def run(seed: int) -> np.ndarray:
        env = MettaGridVecEnv(num_maps=2, seed=seed, num_agents=2, size=7, walls=1, max_steps=6, num_tokens=48)
        env.reset()
        rng = np.random.default_rng(0)
        out = [env.step(rng.integers(0, env.num_actions, env.num_envs))[0] for _ in range(9)]  # crosses a reset
        env.close()
        return np.stack(out)

    a = run(5)
    np.testing.assert_array_equal(a, run(5))
    assert not np.array_equal(a, run(6))
