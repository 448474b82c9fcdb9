"""`jax-tx train` / `jax-tx eval` end to end: outputs on disk, exact resume, errors that name the field."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jax_tx.cli import main as cli_main
from jax_tx.io import checkpoint
from jax_tx.ppo.logging import read_csv

TINY_FLAGS = [
    "--variant", "trxl", "--env", "tmaze", "--env-kw", "corridor_length=2",
    "--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--d-ff", "32", "--memory-len", "6",
    "--actor-hidden", "16", "--critic-hidden", "16",
    "--num-envs", "4", "--rollout-steps", "16", "--bptt-horizon", "4", "--num-minibatches", "2",
    "--update-epochs", "2", "--total-steps", str(6 * 64), "--checkpoint-every", "2", "--seed", "5",
    "--no-progress",
]  # fmt: skip


def final_params(run_dir):
    r = checkpoint.restore(run_dir / "checkpoints")
    return r.step, jax.tree_util.tree_leaves(r.params)


def test_train_resume_is_bit_identical_and_eval_reports(tmp_path, capsys):
    full, parts = tmp_path / "full", tmp_path / "parts"
    assert cli_main(["train", *TINY_FLAGS, "--log-dir", str(full), "--eval-episodes", "8"]) == 0
    out = capsys.readouterr().out
    assert '"clip_coef": 0.1' in out and "resolved config" in out and "final success" in out
    assert (full / "curve.png").stat().st_size > 0
    assert 0.0 <= json.loads((full / "summary.json").read_text())["eval_greedy_success"] <= 1.0
    assert any((full / "tb").iterdir())
    assert checkpoint.all_steps(full / "checkpoints") == [2, 4, 6]
    rows = read_csv(full / "metrics.csv")
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["clip_coef"] == pytest.approx(0.1) and rows[-1]["clip_coef"] == pytest.approx(0.05)
    assert rows[-1]["lr"] == pytest.approx(3e-5, rel=1e-4)

    assert cli_main(["train", *TINY_FLAGS, "--log-dir", str(parts), "--stop-at-iteration", "3"]) == 0
    assert checkpoint.all_steps(parts / "checkpoints") == [2, 3]
    assert cli_main(["train", "--resume", str(parts), "--no-progress"]) == 0
    step_a, leaves_a = final_params(full)
    step_b, leaves_b = final_params(parts)
    assert step_a == step_b == 6
    for a, b in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rows_b = read_csv(parts / "metrics.csv")
    assert [r["iteration"] for r in rows_b] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows_b] == [r["loss"] for r in rows]

    capsys.readouterr()
    assert cli_main(["eval", str(full), "--episodes", "16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 16 and summary["step"] == 6 and 0.0 <= summary["success_rate"] <= 1.0

    # a fresh run never writes into a directory that holds checkpoints
    assert cli_main(["train", *TINY_FLAGS, "--log-dir", str(full)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert checkpoint.all_steps(full / "checkpoints") == [2, 4, 6]


def test_bad_values_name_the_field(tmp_path, capsys):
    assert cli_main(["train", *TINY_FLAGS, "--log-dir", str(tmp_path / "x"), "--clip-coef", "-1"]) == 2
    assert "clip_coef" in capsys.readouterr().err
    assert cli_main(["train", *TINY_FLAGS, "--log-dir", str(tmp_path / "y"), "--num-minibatches", "3"]) == 2
    assert "num_minibatches" in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoints").exists()
    assert cli_main(["eval", str(tmp_path / "missing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_every_config_field_is_a_flag():
    from jax_tx.cli.train import POLICY_FIXED, build_parser
    from jax_tx.config import PolicyConfig, PPOConfig

    text = build_parser().format_help()
    for cls, skip in ((PPOConfig, ()), (PolicyConfig, POLICY_FIXED)):
        for name in cls.__dataclass_fields__:
            if name not in skip:
                assert "--" + name.replace("_", "-") in text, name


def test_checkpoint_round_trip_of_a_zero_size_memory_state(tmp_path):
    """The mlp's placeholder memory is a [B, 0] leaf, which orbax cannot write: it is rebuilt on restore."""
    from jax_tx.config import PPOConfig, TrainConfig, preset
    from jax_tx.ppo.run import restore_state, save_state
    from jax_tx.ppo.trainer import Trainer

    tc = TrainConfig(policy=preset("mlp", 4, 3), ppo=PPOConfig(num_minibatches=1), num_envs=2, rollout_steps=16,
                     log_dir=str(tmp_path))  # fmt: skip
    tr = Trainer(tc)
    state = tr.init(seed=7)
    save_state(tmp_path / "checkpoints", tc, state)
    back = restore_state(tmp_path, tr)
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(back), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_init_is_a_flag_and_a_recipe_policy_field(tmp_path, capsys):
    """--init orthogonal and a recipe's "policy": {"init": ...} reach PolicyConfig.init (flags win)."""
    from jax_tx.cli.train import build_parser, config_from_args

    assert config_from_args(build_parser().parse_args(TINY_FLAGS)).policy.init == "default"
    assert (
        config_from_args(build_parser().parse_args([*TINY_FLAGS, "--init", "orthogonal"])).policy.init == "orthogonal"
    )
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"variant": "agalite", "policy": {"init": "orthogonal", "d_model": 16}}))
    assert config_from_args(build_parser().parse_args(["--recipe", str(recipe)])).policy.init == "orthogonal"
    flags = ["--recipe", str(recipe), "--init", "default"]
    assert config_from_args(build_parser().parse_args(flags)).policy.init == "default"
    assert cli_main(["train", *TINY_FLAGS, "--log-dir", str(tmp_path / "x"), "--init", "xavier"]) == 2
    assert "config field init='xavier'" in capsys.readouterr().err


def test_gate_bias_fields_are_flags_and_recipe_policy_fields(tmp_path, capsys):
    """--lstm-forget-bias 3 and a recipe's "policy": {"gru_update_bias": 2} reach PolicyConfig (as floats)."""
    from jax_tx.cli.train import build_parser, config_from_args

    flags = [*TINY_FLAGS, "--variant", "lstm", "--lstm-forget-bias", "3"]
    policy = config_from_args(build_parser().parse_args(flags)).policy
    assert (policy.lstm_forget_bias, policy.gru_update_bias) == (3.0, 0.0)
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"variant": "gru", "policy": {"gru_update_bias": 2, "lstm_forget_bias": 0.5}}))
    policy = config_from_args(build_parser().parse_args(["--recipe", str(recipe)])).policy
    assert (policy.gru_update_bias, policy.lstm_forget_bias) == (2.0, 0.5)
    assert isinstance(policy.gru_update_bias, float)
    assert cli_main(["train", *TINY_FLAGS, "--log-dir", str(tmp_path / "x"), "--gru-update-bias", "nan"]) == 2
    assert "config field gru_update_bias=nan" in capsys.readouterr().err


def test_agalite_gate_bias_is_a_flag_and_a_recipe_policy_field(tmp_path):
    """--agalite-gate-bias -4 and a recipe's "policy": {"agalite_gate_bias": -3} reach PolicyConfig as floats."""
    from jax_tx.cli.train import build_parser, config_from_args

    flags = [*TINY_FLAGS, "--variant", "agalite", "--agalite-gate-bias", "-4"]
    assert config_from_args(build_parser().parse_args(flags)).policy.agalite_gate_bias == -4.0
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"variant": "agalite_fast", "policy": {"agalite_gate_bias": -3}}))
    policy = config_from_args(build_parser().parse_args(["--recipe", str(recipe)])).policy
    assert policy.agalite_gate_bias == -3.0 and isinstance(policy.agalite_gate_bias, float)
