"""The token-observation T-Maze and PPO with encoder="tokens": env contract, ratio == 1, `jax-tx train`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_tx import config
from jax_tx.cli import main as cli_main
from jax_tx.envs import make_env
from jax_tx.ppo.logging import read_csv
from jax_tx.ppo.trainer import Trainer


def test_token_tmaze_observations_are_tokens_and_the_cue_shows_once():
    env = make_env("token_tmaze", corridor_length=3, num_tokens=5)
    obs, state = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == (5, 3) and obs.dtype == jnp.uint8 and env.obs_dim == 5
    attrs = set(np.asarray(obs[:, 1]).tolist())
    assert {1, 4} <= attrs and len(attrs & {2, 3}) == 1  # agent, junction, one cue
    assert int((np.asarray(obs[:, 0]) == 0xFF).sum()) == 2
    obs, state, reward, term, trunc, info = env.step(jax.random.PRNGKey(1), state, jnp.int32(0))
    assert not set(np.asarray(obs[:, 1]).tolist()) & {2, 3}  # no cue after the first step
    assert info["final_observation"].dtype == jnp.uint8
    agent = np.asarray(obs)[np.asarray(obs[:, 1]) == 1][0]
    assert agent[0] >> 4 == 1 and agent[2] == 2  # moved forward to x = 1
    with pytest.raises(ValueError, match="corridor_length must be an int in 1..10"):
        make_env("token_tmaze", corridor_length=11)


def test_encoder_must_match_the_env():
    env = make_env("token_tmaze")
    tc = config.TrainConfig(policy=config.preset("mlp", env.obs_dim, env.num_actions), env="token_tmaze")
    with pytest.raises(ValueError, match="gives token observations .* encoder='mlp'; use encoder='tokens'"):
        Trainer(tc)
    tmaze = config.TrainConfig(policy=config.preset("mlp", 4, 3, encoder="tokens"), env="tmaze")
    with pytest.raises(ValueError, match="gives flat float observations .* use encoder='mlp'"):
        Trainer(tmaze)


def test_jax_tx_train_runs_on_token_observations(tmp_path, capsys):
    flags = [
        "train", "--variant", "trxl", "--env", "token_tmaze", "--env-kw", "corridor_length=2", "--encoder", "tokens",
        "--token-num-latents", "2", "--token-num-heads", "2", "--token-value-norms", "[1, 4]",
        "--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--d-ff", "16", "--memory-len", "4",
        "--actor-hidden", "8", "--critic-hidden", "8", "--num-envs", "4", "--rollout-steps", "8",
        "--bptt-horizon", "4", "--num-minibatches", "2", "--update-epochs", "1", "--total-steps", str(2 * 32),
        "--no-progress", "--log-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    assert cli_main(flags) == 0
    assert '"encoder": "tokens"' in capsys.readouterr().out
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert [r["iteration"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in rows)
