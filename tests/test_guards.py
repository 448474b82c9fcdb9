"""Guards that make a training run trustworthy, checked without training (fast):
non-finite flags, recipe and flag mistakes (one line, exit 2, nothing written), the log-dir lock,
checkpoint schedule, damaged-checkpoint fallback, provenance, strict summary JSON, the curve."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_tx.cli import main as cli_main
from jax_tx.ppo import guards

TINY = ["--variant", "mlp", "--env", "tmaze", "--env-kw", "corridor_length=2", "--num-envs", "4",
        "--rollout-steps", "16", "--bptt-horizon", "4", "--num-minibatches", "2", "--total-steps", "128",
        "--no-progress"]  # fmt: skip


def test_nonfinite_code_names_the_first_bad_value_in_order():
    ok = {"observation": jnp.ones(3), "reward": jnp.zeros(2), "loss": jnp.float32(1.0), "grad_norm": 2.0,
          "params": {"w": jnp.ones((2, 2)), "step": jnp.int32(3)}}  # fmt: skip
    assert float(guards.nonfinite_code(ok)) == 0.0
    bad = {**ok, "reward": jnp.array([0.0, jnp.nan]), "params": {"w": jnp.full((2, 2), jnp.inf)}}
    code = jax.jit(guards.nonfinite_code)(bad)
    assert float(code) == 2.0 and guards.describe(code) == "reward"
    assert guards.describe(guards.nonfinite_code({**ok, "params": {"w": jnp.array([jnp.inf])}})) == "params"
    assert guards.first_bad(np.array([0.0, 0.0, 3.0, 1.0])) == 2 and guards.first_bad(np.zeros(4)) is None
    new, old = {"a": jnp.ones(2)}, {"a": jnp.zeros(2)}
    assert float(guards.keep_if(jnp.array(False), new, old)["a"].sum()) == 0.0


def _one_line_exit_2(capsys, argv, *needles):
    try:
        code = cli_main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize(
    "recipe, needle",
    [
        ({"varient": "trxl"}, "varient"),
        ({"ppo": {"learning_rat": 1e-3}}, "learning_rat"),
        ({"num_envs": "64"}, "num_envs"),
        ({"ppo": {"gamma": None}}, "gamma"),
        ({"policy": {"d_model": "16"}}, "d_model"),
        ([{"variant": "mlp"}], "JSON list"),
    ],
)
def test_recipe_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, recipe, needle):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe))
    log_dir = tmp_path / "run"
    _one_line_exit_2(capsys, ["train", "--recipe", str(path), "--log-dir", str(log_dir), "--no-progress"], needle)
    assert not log_dir.exists()


def test_every_shipped_recipe_passes_the_recipe_checks(tmp_path):
    from pathlib import Path

    from jax_tx.config.recipe import load_recipe

    recipes = Path(__file__).resolve().parents[1] / "experiments" / "recipes"
    paths = sorted(recipes.glob("*.json"))
    assert len(paths) >= 20
    suite = sorted(recipes.glob("suite/*__*.json"))  # the graded suite's (learning_suite.py --write-recipes)
    assert len(suite) >= 80
    paths += suite
    for path in paths:
        if path.name.startswith("mettagrid_"):  # experiments/train_mettagrid.py's format: jax-tx train's + num_groups
            recipe = json.loads(path.read_text())
            assert isinstance(recipe.pop("num_groups"), int)
            path = tmp_path / path.name
            path.write_text(json.dumps(recipe))
        assert isinstance(load_recipe(path), dict)


def test_flag_mistakes_are_one_line_and_write_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    cases = [
        (["--recipe", str(tmp_path / "missing.json")], "missing.json"),
        (["--max-grad-norm", "0"], "max_grad_norm"),
        (["--stop-at-iteration", "-1"], "--stop-at-iteration"),
        (["--total-steps", "10"], "total_steps"),  # below one iteration (4 envs x 16 steps)
        (["--agalite-eps", "0"], "agalite_eps"),
        (["--env-kw", "corridor_length"], "KEY=VALUE"),
        (["--on-nonfinite", "ignore"], "on_nonfinite"),
        (["--env", "gymnax:MemoryChain-bsuite", "--env-kw", "memory_length=abc"], "memory_length"),
        (["--step", "3"], "--resume"),
        (["--num-envs", "many"], "--num-envs"),
    ]
    for extra, needle in cases:
        _one_line_exit_2(capsys, ["train", *TINY, "--log-dir", str(run), *extra], needle)
        assert not run.exists(), extra
    a_file = tmp_path / "file"
    a_file.write_text("x")
    _one_line_exit_2(capsys, ["train", *TINY, "--log-dir", str(a_file)], "is a file")
    assert a_file.read_text() == "x"


def test_help_says_policy_defaults_come_from_the_preset():
    from jax_tx.cli.train import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "--d-model INT (default from the variant's preset)" in text and "--clip-coef FLOAT (default 0.1)" in text


def test_metrics_of_a_run_without_checkpoints_are_not_truncated(tmp_path, capsys):
    (tmp_path / "metrics.csv").write_text("iteration,loss\n1,0.5\n")
    _one_line_exit_2(capsys, ["train", *TINY, "--log-dir", str(tmp_path)], "metrics.csv")
    assert (tmp_path / "metrics.csv").read_text() == "iteration,loss\n1,0.5\n"
    assert not (tmp_path / "config.json").exists()


def test_lock_refuses_a_live_owner_and_takes_over_a_stale_one(tmp_path):
    from jax_tx.ppo.runlock import LOCK_NAME, RunLock, RunLocked

    warnings = []
    with RunLock(tmp_path, warn=warnings.append) as lock:
        owner = json.loads((tmp_path / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and lock.held
        with pytest.raises(RunLocked, match="in use by this process"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner["pid"] = int(dead.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps(owner))
    with RunLock(tmp_path, warn=warnings.append):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(warnings) == 1 and "stale" in warnings[0] and str(owner["pid"]) in warnings[0]
    (tmp_path / LOCK_NAME).write_text(json.dumps({**owner, "host": "elsewhere"}))
    with pytest.raises(RunLocked, match="elsewhere"):
        RunLock(tmp_path).acquire()


@pytest.mark.parametrize("ipc, every, start", [(3, 5, 0), (4, 4, 0), (3, 5, 7), (1, 2, 0)])
def test_checkpoints_land_on_multiples_of_checkpoint_every(ipc, every, start):
    """The loop's call plan: full lax.scan blocks while they fit before the next pause, then single calls."""
    from jax_tx.ppo.run import next_pause

    it, stop, saved, calls = start, 23, [], []
    while it < stop:
        n = ipc if next_pause(it, stop, every) - it >= ipc else 1
        it += n
        calls.append(n)
        if it % every == 0:
            saved.append(it)
    assert saved == [k for k in range(start + 1, stop + 1) if k % every == 0]
    assert it == stop and calls.count(ipc) >= (stop - start) // every * (every // ipc) - 1


def test_summary_json_is_strict_and_the_curve_has_a_loss_panel_with_readable_ticks(tmp_path):
    from jax_tx.ppo.logging import curve_figure, json_safe

    text = json.dumps(json_safe({"sps": math.nan, "x": [1.0, math.inf], "ok": 2.5}), allow_nan=False)
    assert json.loads(text) == {"sps": None, "x": [1.0, None], "ok": 2.5}
    rows = [{"env_steps": 4096.0 * i, "success": i / 300, "episode_return": 0.1, "loss": 1.0 / i}
            for i in range(1, 301)]  # fmt: skip
    fig = curve_figure(rows, "t")
    assert [ax.get_ylabel() for ax in fig.axes] == ["success rate", "episode return", "PPO loss"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        assert len(boxes) >= 2
        for a, b in zip(boxes[:-1], boxes[1:], strict=True):
            assert a.x1 < b.x0, [t.get_text() for t in ax.get_xticklabels()]
        assert all("k" in t.get_text() or "M" in t.get_text() or t.get_text() == "0" for t in ax.get_xticklabels())


def test_provenance_and_version_name_libraries_and_commit(capsys):
    from jax_tx.ppo.provenance import provenance

    p = provenance()
    for key in ("jax", "jaxlib", "flax", "optax", "orbax", "torch", "cpu", "devices", "git_commit"):
        assert key in p
    assert p["jax"] == jax.__version__ and p["devices"] and "cores" in p["cpu"]
    assert cli_main(["--version"]) == 0
    out = capsys.readouterr().out
    assert f"jax {jax.__version__}" in out and "orbax" in out and "torch" in out


def test_list_shows_variants_with_parameter_counts_envs_and_recipes(capsys):
    assert cli_main(["list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["variant"], r["size"]): r for r in out["variants"]}
    assert rows[("trxl", "default")]["d_model"] == 256 and rows[("trxl", "default")]["num_layers"] == 6
    assert rows[("trxl", "metta_small")]["params"] < rows[("trxl", "default")]["params"]
    import torch_ref
    from jax_tx import config

    for variant in ("lstm", "gru"):
        twin = torch_ref.make_policy(config.preset(variant, 4, 3))
        assert rows[(variant, "default")]["params"] == sum(p.numel() for p in twin.parameters())
    assert rows[("gru", "default")]["lstm_width"] == 128
    # the LSTM has one gate block more: W rows of weight_ih (D wide), weight_hh (W wide) and both biases
    assert rows[("lstm", "default")]["params"] - rows[("gru", "default")]["params"] == 128 * (128 + 128 + 2)
    assert {"tmaze", "repeat_previous"} <= {r["env"] for r in out["envs"]}
    assert any(r["recipe"].endswith("default.json") for r in out["recipes"])


@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_int_memory_is_refused_by_both_twins(variant):
    import jax_tx
    from jax_tx import config

    cfg = config.preset(variant, 4, 3, d_model=8)
    model, mem = jax_tx.make_policy(cfg), jax_tx.initial_memory(cfg, 2)
    obs, reset = jnp.zeros((2, 1, 4)), jnp.zeros((2, 1), bool)
    params = model.init(jax.random.PRNGKey(0), obs, reset, mem)
    key = sorted(mem)[0]
    with pytest.raises(ValueError, match=rf"memory leaf \['{key}'\].*is int but must be float"):
        model.apply(params, obs, reset, {**mem, key: mem[key].astype(jnp.int32)})
    import torch

    import torch_ref

    tmem = torch_ref.initial_memory(cfg, 2)
    with pytest.raises(ValueError, match=rf"memory leaf \['{key}'\].*is int but must be float"):
        torch_ref.make_policy(cfg)(torch.zeros(2, 1, 4), torch.zeros(2, 1, dtype=torch.bool),
                                   {**tmem, key: tmem[key].to(torch.int32)})  # fmt: skip


def test_parity_report_refuses_to_overwrite_the_tracked_results_by_default(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "parity_report.py"
    spec = importlib.util.spec_from_file_location("parity_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = (path.parent / "results" / "parity.json").read_bytes()
    with pytest.raises(SystemExit) as exc:
        module.main(["--out", str(path.parent / "results" / "parity.json")])
    assert exc.value.code == 2 and "--overwrite-tracked" in capsys.readouterr().err
    assert (path.parent / "results" / "parity.json").read_bytes() == before
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "(default: print only)" in capsys.readouterr().out
