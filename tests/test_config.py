"""Config: presets, JSON round trip, validation that names the field, import hygiene."""

import dataclasses
import json
import subprocess
import sys

import pytest

from jax_tx import config
from jax_tx.config import ConfigError, PolicyConfig, preset


@pytest.mark.parametrize("variant", sorted(config.PRESETS))
def test_presets_round_trip_json(variant):
    layout = dict(base_dim=4, slot_dim=3) if variant == "slot" else {}  # obs = [base 4 | one slot of 3]
    cfg = preset(variant, obs_dim=7, num_actions=3, **layout)
    assert cfg.variant == variant
    again = PolicyConfig.from_json(cfg.to_json())
    assert again == cfg and hash(again) == hash(cfg)
    assert json.loads(cfg.to_json())["schema_version"] == config.SCHEMA_VERSION


def test_config_is_frozen():
    cfg = preset("trxl", obs_dim=4, num_actions=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 3  # type: ignore[misc]


def test_preset_defaults_follow_the_seeds():
    got = {
        v: (c.d_model, c.num_layers, c.num_heads, c.d_ff, c.memory_len)
        for v in config.XL_VARIANTS
        for c in [preset(v, obs_dim=4, num_actions=2)]
    }
    assert got == {
        "gtrxl": (128, 6, 8, 512, 64),
        "trxl": (256, 6, 8, 1024, 64),
        "trxl_nvidia": (512, 16, 8, 2048, 192),
    }
    gtrxl = preset("gtrxl", obs_dim=4, num_actions=2)
    assert (gtrxl.gating, gtrxl.gate_bias, gtrxl.sublayer_relu, gtrxl.pre_norm) == ("gru", 2.0, True, True)
    small = preset("trxl_nvidia", obs_dim=4, num_actions=2, size="metta_small")
    assert (small.d_model, small.num_layers, small.memory_len, small.d_ff) == (40, 1, 16, 160)


def test_overrides_apply_after_preset():
    cfg = preset("gtrxl", obs_dim=4, num_actions=2, size="metta_small", memory_len=7)
    assert (cfg.d_model, cfg.memory_len) == (32, 7)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(num_heads=3), "num_heads"),
        (dict(d_model=0), "d_model"),
        (dict(dtype="float16"), "dtype"),
        (dict(gating="lstm"), "gating"),
        (dict(memory_len=0), "memory_len"),
        (dict(clamp_len=0), "clamp_len"),
        (dict(dropout=1.5), "dropout"),
        (dict(init="xavier"), "init"),
        (dict(lstm_forget_bias=float("nan")), "lstm_forget_bias"),
        (dict(gru_update_bias=float("inf")), "gru_update_bias"),
        (dict(gru_update_bias=True), "gru_update_bias"),
        (dict(lstm_forget_bias="3"), "lstm_forget_bias"),
        (dict(agalite_gate_bias=float("nan")), "agalite_gate_bias"),
        (dict(agalite_gate_bias=float("-inf")), "agalite_gate_bias"),
        (dict(agalite_gate_bias=False), "agalite_gate_bias"),
        (dict(agalite_gate_bias="-4"), "agalite_gate_bias"),
        (dict(agalite_fast_norm=1), "agalite_fast_norm"),
        (dict(agalite_fast_norm=True), "agalite_fast_norm"),  # trxl has no fast AGaLiTe layer
        (dict(agalite_gating="lstm"), "agalite_gating"),
        (dict(agalite_gating="none"), "agalite_gating"),  # trxl has no AGaLiTe block to ungate
        (dict(agalite_ff=0), "agalite_ff"),
        (dict(agalite_ff=False), "agalite_ff"),  # trxl has no AGaLiTe block
        (dict(sliding_positions="rope"), "sliding_positions"),
        (dict(sliding_positions="none"), "sliding_positions"),  # trxl has its own relative positions
    ],
)
def test_validation_names_the_bad_field(overrides, field):
    with pytest.raises(ConfigError, match=f"config field {field}="):
        preset("trxl", obs_dim=4, num_actions=2, **overrides)


def test_agalite_block_ablations_need_standard_mode_and_old_configs_load_the_paper_block():
    with pytest.raises(ConfigError, match="config field agalite_gating='none'.*standard-mode"):
        preset("agalite_fast", obs_dim=4, num_actions=2, agalite_gating="none")
    with pytest.raises(ConfigError, match="config field agalite_ff=False.*standard-mode"):
        preset("agalite_fast", obs_dim=4, num_actions=2, agalite_ff=False)
    cfg = preset("agalite", obs_dim=4, num_actions=2, agalite_gating="none", agalite_ff=False)
    assert PolicyConfig.from_json(cfg.to_json()) == cfg
    old = cfg.to_dict()
    del old["agalite_gating"], old["agalite_ff"]  # a config saved before the fields existed
    assert (PolicyConfig.from_dict(old).agalite_gating, PolicyConfig.from_dict(old).agalite_ff) == ("gru", True)


def test_unknown_variant_field_and_size_are_refused():
    with pytest.raises(ConfigError, match="variant='transformer'"):
        preset("transformer", obs_dim=4, num_actions=2)
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['n_layers'\]"):
        preset("trxl", obs_dim=4, num_actions=2, n_layers=3)
    with pytest.raises(ConfigError, match="size='huge'"):
        preset("trxl", obs_dim=4, num_actions=2, size="huge")


def test_newer_schema_and_unknown_json_fields_are_refused():
    d = preset("trxl", obs_dim=4, num_actions=2).to_dict()
    with pytest.raises(ConfigError, match="newer than this jax_tx understands"):
        PolicyConfig.from_dict({**d, "schema_version": config.SCHEMA_VERSION + 1})
    with pytest.raises(ConfigError, match="unknown config field"):
        PolicyConfig.from_dict({**d, "future_knob": 1})


def test_init_option_round_trips_and_old_configs_load_as_default():
    cfg = preset("agalite", obs_dim=4, num_actions=2, init="orthogonal")
    assert PolicyConfig.from_json(cfg.to_json()) == cfg and json.loads(cfg.to_json())["init"] == "orthogonal"
    old = preset("agalite", obs_dim=4, num_actions=2).to_dict()
    del old["init"]  # a config saved before the field existed
    assert PolicyConfig.from_dict(old).init == "default"
    assert PolicyConfig.from_dict({**old, "schema_version": 1}).init == "default"
    assert config.INITS == ("default", "orthogonal")
    assert (config.orthogonal_gain("actor_out"), config.orthogonal_gain("critic_out")) == (0.01, 1.0)
    assert config.orthogonal_gain("proj") == config.orthogonal_gain("w_r") == pytest.approx(2**0.5, abs=1e-15)


def test_gate_bias_fields_round_trip_and_old_configs_load_the_defaults():
    cfg = preset("lstm", obs_dim=4, num_actions=2, lstm_forget_bias=3.0, gru_update_bias=-0.5)
    again = PolicyConfig.from_json(cfg.to_json())
    assert again == cfg and (again.lstm_forget_bias, again.gru_update_bias) == (3.0, -0.5)
    two = preset("gru", obs_dim=4, num_actions=2, gru_update_bias=2).gru_update_bias  # a JSON int
    assert type(two) is float and two == 2.0
    old = preset("lstm", obs_dim=4, num_actions=2).to_dict()
    del old["lstm_forget_bias"], old["gru_update_bias"]  # a config saved before the fields existed
    loaded = PolicyConfig.from_dict(old)
    assert (loaded.lstm_forget_bias, loaded.gru_update_bias) == (1.0, 0.0)


def test_agalite_gate_bias_round_trips_and_old_configs_load_the_default():
    cfg = preset("agalite_fast", obs_dim=4, num_actions=2, agalite_gate_bias=-4.0)
    again = PolicyConfig.from_json(cfg.to_json())
    assert again == cfg and again.agalite_gate_bias == -4.0 and json.loads(cfg.to_json())["agalite_gate_bias"] == -4.0
    three = preset("agalite", obs_dim=4, num_actions=2, agalite_gate_bias=-3).agalite_gate_bias  # a JSON int
    assert type(three) is float and three == -3.0
    old = preset("agalite", obs_dim=4, num_actions=2).to_dict()
    del old["agalite_gate_bias"]  # a config saved before the field existed
    assert PolicyConfig.from_dict(old).agalite_gate_bias == 0.0
    assert PolicyConfig.from_dict({**old, "schema_version": 1}).agalite_gate_bias == 0.0


@pytest.mark.parametrize(
    "code",
    [
        "import jax_tx.config, sys; assert 'jax' not in sys.modules and 'torch' not in sys.modules",
        "import torch_ref, sys; assert 'jax' not in sys.modules, [m for m in sys.modules if m.startswith('jax')]",
    ],
)
def test_import_hygiene(code):
    """config imports neither framework; torch_ref never imports jax."""
    subprocess.run([sys.executable, "-c", code], check=True)
