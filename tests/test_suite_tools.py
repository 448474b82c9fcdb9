"""The graded suite's bookkeeping (experiments/learning_suite.py, suite_sweep.py): thresholds, overrides, choice."""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import learning_suite as suite  # noqa: E402
import suite_sweep  # noqa: E402


def test_steps_to_is_the_end_of_the_first_window_at_the_threshold():
    s = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert suite.steps_to(s, 0.9, 100, window=5) == 700  # windows end at 5, 6, 7: means 0.6, 0.8, 1.0
    assert suite.steps_to(s, 0.9, 100, window=2) == 400
    assert suite.steps_to([math.nan, 1.0, 1.0], 0.9, 10, window=2) == 30
    # iterations where no episode ended (nan) are skipped: the window holds the last 2 that ended (steps 1 and 3)
    assert suite.steps_to([1.0, math.nan, 1.0, math.nan], 0.9, 10, window=2) == 30
    assert suite.steps_to([1.0, math.nan, 0.0, 1.0, 1.0], 0.9, 10, window=2) == 50
    assert suite.steps_to([1.0, math.nan, math.nan], 0.9, 10, window=2) is None  # one ended iteration < window
    assert suite.steps_to([0.5] * 20, 0.9, 100) is None
    assert suite.steps_to([1.0, 1.0], 0.9, 100, window=5) is None


def test_overrides_reach_nested_fields_and_leave_the_recipe_alone():
    base = suite.recipe("tmaze50", "trxl")
    out = suite.apply_overrides(base, suite.parse_set(["ppo.learning_rate=3e-4", "policy.init=orthogonal", "x=a"]))
    assert out["ppo"]["learning_rate"] == 3e-4 and out["policy"]["init"] == "orthogonal" and out["x"] == "a"
    assert base["ppo"]["learning_rate"] == 1e-3 and "init" not in base["policy"]
    with pytest.raises(SystemExit):
        suite.parse_set(["no-equals-sign"])


def test_a_row_records_the_sweep_choice_under_its_own_overrides(tmp_path, monkeypatch):
    """A row's overrides are the recipe's choice plus --set (which wins), so choosing that row keeps the choice."""
    choices = tmp_path / "choices.json"
    choices.write_text('{"t__v": {"from": "sweep:x", "overrides": {"ppo.bptt_horizon": 256, "policy.eta": 2}}}')
    monkeypatch.setattr(suite, "CHOICES", choices)
    got = suite.row_overrides("t", "v", {"policy.eta": 4})
    assert got == {"ppo.bptt_horizon": 256, "policy.eta": 4}
    assert suite.row_overrides("t", "other", {"policy.eta": 4}) == {"policy.eta": 4}


def test_metrics_file_has_a_row_per_seed_and_iteration_beside_the_curve(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "RESULTS", tmp_path)
    path = suite.metrics_path("tmaze50", "agalite", "sweep:a=1")
    assert path == tmp_path / "tmaze50" / "agalite.sweep-a=1.metrics.csv"
    assert path.with_name("agalite.sweep-a=1.csv") == suite.curve_path("tmaze50", "agalite", "sweep:a=1")
    metrics = {"value_loss": np.array([[0.5, 0.25], [1.0, 2.0]]), "approx_kl": np.array([[1e-3, 2e-3], [0.0, 4.0]])}
    path.parent.mkdir()
    suite.write_metrics(path, [3, 7], metrics, 100)
    with open(path, newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["env_steps", "seed", "approx_kl", "value_loss"]
    assert [(r["env_steps"], r["seed"], r["value_loss"]) for r in got] == [
        ("100", "3", "0.5"),
        ("200", "3", "0.25"),
        ("100", "7", "1"),
        ("200", "7", "2"),
    ]
    assert got[1]["approx_kl"] == "0.002"


def test_recurrent_cores_get_a_bptt_horizon_covering_the_task():
    assert suite.horizon_sizes("trxl", 65) == ({"memory_len": 73, "max_cache_size": 276}, 16)
    assert suite.horizon_sizes("lstm", 65)[1] == 128
    assert suite.horizon_sizes("gru", 11)[1] == 16
    assert suite.horizon_sizes("lstm", 257)[1] == 256  # capped


def write_runs(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def run_row(tag: str, greedy: str, final: str, to90: str, overrides: str = "{}") -> dict:
    return {"task": "t", "variant": "v", "tag": tag, "overrides": overrides, "greedy_success": greedy,
            "final_success": final, "steps_to_0.9": to90, "env_steps": "800000"}  # fmt: skip


def test_choose_keeps_a_sweep_point_only_when_it_beats_the_base(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "RESULTS", tmp_path)
    base = run_row("", "0.5 0.5", "0.5 0.5", "- -")
    better = run_row("sweep:lr=3e-4", "1.0 1.0", "1.0 1.0", "100 200", '{"ppo.learning_rate": 0.0003}')
    worse = run_row("sweep:bptt=32", "0.4 0.5", "0.5 0.5", "- -", '{"ppo.bptt_horizon": 32}')
    write_runs(tmp_path / "runs.csv", [base, better, worse])
    assert suite_sweep.choose() == {"t__v": {"from": "sweep:lr=3e-4", "overrides": {"ppo.learning_rate": 0.0003}}}
    write_runs(tmp_path / "runs.csv", [base, worse])
    assert suite_sweep.choose() == {}
    on_default = [{**r, "task": "default"} for r in (base, better)]  # recipes/default.json is never overridden
    write_runs(tmp_path / "runs.csv", on_default)
    assert suite_sweep.choose() == {}


def test_choose_keeps_a_larger_budget_against_the_full_budget_base_only(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "RESULTS", tmp_path)
    longer = run_row("sweep:budget=2", "1.0 1.0", "1.0 1.0", "100 200", '{"total_steps": 800000}')
    write_runs(tmp_path / "runs.csv", [run_row("", "0.5 0.5", "0.5 0.5", "- -"), longer])
    assert suite_sweep.choose() == {"t__v": {"from": "sweep:budget=2", "overrides": {"total_steps": 800000}}}
    half_base = run_row("sweep:base", "0.5 0.5", "0.5 0.5", "- -", '{"total_steps": 200000}')
    half_over = '{"ppo.learning_rate": 0.0003, "total_steps": 200000}'
    half_point = run_row("sweep:lr=3e-4", "1.0 1.0", "1.0 1.0", "100 200", half_over)
    write_runs(tmp_path / "runs.csv", [half_base, half_point])
    assert suite_sweep.choose() == {"t__v": {"from": "sweep:lr=3e-4", "overrides": {"ppo.learning_rate": 0.0003}}}


def test_choose_compares_a_point_with_the_base_run_on_its_own_cpu(tmp_path, monkeypatch):
    """The untagged base ran on AMD and solved less than its Xeon rerun; a Xeon point that beats only the AMD
    base is not chosen, one that beats the Xeon base is."""
    monkeypatch.setattr(suite, "RESULTS", tmp_path)
    amd, xeon = {"machine": "2-core AMD EPYC; jax"}, {"machine": "2-core Intel Xeon; jax"}
    base = {**run_row("", "0.5 0.5", "0.5 0.5", "- -"), **amd}
    rerun = {**run_row("check:base,xeon", "1.0 0.5", "1.0 0.5", "100 -"), **xeon}
    point = {**run_row("sweep:init=orthogonal", "0.5 1.0", "0.5 0.9", "- 300", '{"policy.init": "orthogonal"}'), **xeon}
    write_runs(tmp_path / "runs.csv", [base, rerun, point])
    assert suite_sweep.choose() == {}
    write_runs(tmp_path / "runs.csv", [base, point])  # no same-CPU base: the untagged row decides
    assert suite_sweep.choose()["t__v"]["from"] == "sweep:init=orthogonal"
    better = {**point, "greedy_success": "1.0 1.0"}
    write_runs(tmp_path / "runs.csv", [base, rerun, better])
    assert suite_sweep.choose()["t__v"]["from"] == "sweep:init=orthogonal"


def test_choose_prefers_the_smaller_budget_among_equally_good_points(tmp_path, monkeypatch):
    """Two points that both solve every seed: the one at the task's budget wins over one at twice it, though
    the longer run reaches 0.9 in fewer steps (a doubled budget is chosen only where it is needed)."""
    monkeypatch.setattr(suite, "RESULTS", tmp_path)
    base = run_row("", "0.5 0.5", "0.5 0.5", "- -")
    wide = run_row("sweep:hidden=64", "1.0 1.0", "1.0 0.996", "500000 520000", '{"policy.lstm_hidden": 64}')
    longer = {**run_row("sweep:budget=2", "1.0 1.0", "1.0 1.0", "300000 310000", '{"total_steps": 1600000}'),
              "env_steps": "1600000"}  # fmt: skip
    write_runs(tmp_path / "runs.csv", [base, wide, longer])
    assert suite_sweep.choose()["t__v"]["from"] == "sweep:hidden=64"


def test_longest_solved_names_the_longest_rung_every_seed_solves():
    import suite_report

    def row(task, variant, greedy, tag="", steps=None):
        steps = steps or suite.TASKS[task]["steps"]
        return dict(task=task, variant=variant, tag=tag, greedy_success=greedy, env_steps=str(steps))

    rungs = suite_report.LADDERS["T-Maze"]
    rows = [
        row("tmaze10", "lstm", "1.0 1.0 0.95"),
        row("tmaze50", "lstm", "1.0 1.0 0.5"),  # one seed short: not solved
        row("tmaze50", "lstm", "1.0 1.0 1.0", tag="sweep:x", steps=1_200_000),
        row("tmaze100", "lstm", "0.0 0.0 0.0"),
        row("tmaze10", "gru", "1.0 1.0"),  # two seeds are too few
    ]
    got = suite_report.longest_solved(rows, "lstm", rungs)
    assert got == "tmaze50 (sweep:x, 1200k = 2.0x budget); tried up to tmaze100"
    assert suite_report.longest_solved(rows, "gru", rungs) == "-; tried up to tmaze10"
    assert suite_report.longest_solved(rows, "trxl", rungs) == "not run"


def test_restate_steps_to_recomputes_from_the_curves_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "RESULTS", tmp_path)
    head = {"task": "", "variant": "", "tag": "", "steps_to_0.9": ""}
    rows = [{**head, "task": "memchain256", "variant": "trxl", "steps_to_0.9": "- -"},
            {**head, "task": "tmaze10", "variant": "gru", "tag": "sweep:x", "steps_to_0.9": "7"}]  # fmt: skip
    suite.write_rows(tmp_path / "runs.csv", rows)
    curve = suite.curve_path("memchain256", "trxl", "")
    curve.parent.mkdir()
    # seed 0: episodes end every other iteration, all successes; seed 1: never above 0.5
    lines = ["env_steps,success_s0,success_s1"] + [f"{(i + 1) * 10},{'nan' if i % 2 else '1.0'},0.5" for i in range(12)]
    curve.write_text("\n".join(lines) + "\n")
    assert suite.restate_steps_to() == 1  # the second row has no curve file: left alone
    with open(tmp_path / "runs.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert [r["steps_to_0.9"] for r in got] == ["90 -", "7"]  # 5th ended iteration is index 8; order kept
    os.utime(tmp_path / "runs.csv", ns=(0, 0))
    assert suite.restate_steps_to() == 0  # already restated: nothing changes, and the file is not rewritten
    assert (tmp_path / "runs.csv").stat().st_mtime_ns == 0


@pytest.mark.parametrize("variant", ["agalite", "agalite_fast"])
def test_dead_features_find_the_head_whose_query_feature_projection_is_negative(variant):
    """agalite_dead_features reads the projections each AGaLiTe layer sows: with head 0's p2 bias at -1e3 in
    layer 0, relu(p2) = 0, so that head's phi(q) is zero on every step (fraction 1, from < 1 unedited), while
    layer 0's keys and head 1's queries are exactly as before."""
    import agalite_dead_features as adf
    import jax
    import jax.numpy as jnp

    from jax_tx.config import preset
    from jax_tx.models import agalite
    from jax_tx.models.policy import initial_memory, make_policy

    cfg = preset(variant, 3, 2, d_model=16, num_layers=2, num_heads=2, d_head=8, d_ff=32, eta=2)
    model = make_policy(cfg)
    obs = jax.random.normal(jax.random.PRNGKey(0), (4, 6, 3))
    reset = jnp.zeros((4, 6), bool).at[:, 0].set(True)
    params = model.init(jax.random.PRNGKey(1), obs, reset, initial_memory(cfg, 4))
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    # the p bias, [H, 3, eta]: its own Dense "p" (standard) or after the kqvbg block of the fused "kqvbgp" (fast)
    name, p2_head0 = (
        ("['kqvbgp']", 5 * cfg.num_heads * cfg.head_dim + cfg.eta) if variant == "agalite_fast" else ("['p']", cfg.eta)
    )
    path0 = next(p for p, _ in flat if name in jax.tree_util.keystr(p) and "bias" in str(p[-1]))  # layer 0
    edited = jax.tree_util.tree_map_with_path(
        lambda p, x: x.at[p2_head0 : p2_head0 + cfg.eta].set(-1e3) if p == path0 else x, params
    )

    def dead(prm):
        _, found = model.apply(prm, obs, reset, initial_memory(cfg, 4), mutable=["intermediates"])
        layers = list(adf.attention_intermediates(found["intermediates"]).values())
        assert len(layers) == 2
        kqvbg, p = layers[0]
        psi, phi, *_ = agalite.feature_maps(cfg, kqvbg, p)
        return adf.zero_fraction(np.asarray(phi)), adf.zero_fraction(np.asarray(psi))

    (q0, k0), (q1, k1) = dead(params), dead(edited)
    assert q0[0] < 1.0 and q1[0] == 1.0, (q0, q1)
    assert q1[1] == q0[1] and np.array_equal(k1, k0)


def test_zero_score_fraction_finds_disjoint_supports_and_clears_the_norm_at_a_reset():
    """Head 0 writes psi = e0 and queries phi = e1 on every step: its score <s_t, phi_t> is 0 throughout (1.0) though
    neither map is zero. Head 1 writes e0 at t = 0 only and queries e0 always: s carries that key through t = 1,
    the reset at t = 2 clears it, so its score is zero on t = 2, 3 (0.5)."""
    import agalite_dead_features as adf
    import jax.numpy as jnp

    e0, e1 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    psi = jnp.zeros((1, 4, 2, 2)).at[0, :, 0].set(e0).at[0, 0, 1].set(e0)
    phi = jnp.zeros((1, 4, 2, 2)).at[0, :, 0].set(e1).at[0, :, 1].set(e0)
    gamma = jnp.full((1, 4, 2, 2), 0.5)
    reset = jnp.array([[True, False, True, False]])
    np.testing.assert_array_equal(adf.zero_score_fraction(psi, phi, gamma, reset), [1.0, 0.5])


def test_dead_features_section_tables_each_seed_in_order(tmp_path):
    import suite_report

    assert suite_report.dead_features_section(tmp_path / "none.csv") == []
    base = {
        "task": "tmaze50",
        "variant": "agalite_fast",
        "overrides": "{}",
        "layer": "0",
        "num_heads": "2",
        "machine": "m",
    }
    write_runs(
        tmp_path / "d.csv",
        [
            {
                **base,
                "seed": "10",
                "dead_query": "0.000 0.000",
                "dead_key": "0.000 0.000",
                "dead_heads": "0",
                "zero_score": "",
            },  # a row written before zero_score was recorded
            {
                **base,
                "seed": "2",
                "dead_query": "1.000 1.000",
                "dead_key": "0.000 0.003",
                "dead_heads": "2",
                "zero_score": "1.000 0.250",
            },
        ],
    )
    lines = suite_report.dead_features_section(tmp_path / "d.csv")
    body = [x for x in lines if x.startswith("| tmaze50")]
    assert body == [
        "| tmaze50 | agalite_fast | `{}` | 2 | 0 | 1.000 1.000 | 0.000 0.003 | 1.000 0.250 | 2 of 2 |",
        "| tmaze50 | agalite_fast | `{}` | 10 | 0 | 0.000 0.000 | 0.000 0.000 | - | 0 of 2 |",
    ]


def test_walk_cells_average_entropy_and_steps_per_episode_at_the_end_and_before_the_first_0_9_window():
    import suite_report

    # 100 env steps per iteration; entropy i / 10 and 1 + i episodes at iteration i (none ended at i = 0)
    its = [{"env_steps": str(100 * (i + 1)), "entropy": str(i / 10), "episodes": str(i and 1 + i)} for i in range(12)]
    end, before = suite_report.walk_cells(its, steps_to="1000", last=2, before=3)
    # end: iterations 10, 11 -> entropy 1.05, 200 steps / 23 episodes; the window reaching 0.9 at step 1000 is
    # iterations 5..9, so before it iterations 2, 3, 4 -> entropy 0.30, 300 steps / 12 episodes
    assert (end, before) == ("1.05 9", "0.30 25")
    assert suite_report.walk_cells(its, steps_to="-", last=12) == ("0.55 16", "-")  # 1200 steps / 77 episodes
    assert suite_report.walk_cells(its, steps_to="500")[1] == "-"  # the window starts at iteration 0


def test_greedy_gap_plays_the_suites_greedy_episodes_and_counts_short_sampled_ones():
    """greedy_gap's greedy success is the suite's greedy_success (same keys, same play); its short sampled episodes
    are the finished ones within the greedy median length + 2, and every finished greedy episode counts as short."""
    import greedy_gap

    from jax_tx.ppo.trainer import Trainer

    rec = suite.apply_overrides(suite.recipe("tmaze10", "mlp"), {"env_kwargs.corridor_length": 2, "num_envs": 4})
    trainer = Trainer(suite.train_config(rec))
    state = trainer.init_seeds([0, 1])
    played = greedy_gap.play_both(trainer, state, [0, 1], 16)
    assert played["greedy"]["success"] == suite.greedy_success(trainer, state, [0, 1], 16)
    for mode, r in played.items():
        for i in range(2):
            finished = len(r["lengths"][i])
            assert finished == round(16 * r["finished"][i])
            limit = np.median(played["greedy"]["lengths"][i]) + 2 if mode == "sampled" else np.inf
            assert r["short_episodes"][i] == int((r["lengths"][i] <= limit).sum())
    assert played["greedy"]["short_episodes"] == [len(x) for x in played["greedy"]["lengths"]]
    for r in played.values():  # the first-observation groups partition the finished episodes
        for i in range(2):
            counts = [int(g.split(": n ")[1].split(",")[0]) for g in r["by_first_obs"][i].split(" | ")]
            assert sum(counts) == len(r["lengths"][i]) and len(counts) <= 2  # tmaze: two cues
