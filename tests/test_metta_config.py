"""Config of the token encoder, the Cortex/Metta options and the Metta presets (no jax, no torch)."""

import json

import pytest

from jax_tx import config
from jax_tx.config import ConfigError, PolicyConfig, preset


@pytest.mark.parametrize("name", list(config.METTA_PRESETS))
def test_metta_presets_are_cores_with_the_token_encoder(name):
    cfg = preset(name, obs_dim=48, num_actions=5)
    assert cfg.variant == config.METTA_PRESETS[name][0] and cfg.variant in config.VARIANTS
    assert cfg.encoder == "tokens" and cfg.obs_dim == 48
    assert PolicyConfig.from_json(cfg.to_json()) == cfg
    assert name not in config.VARIANTS


def test_cortex_presets_set_the_cortex_options():
    xl = preset("metta_cortex_xl", obs_dim=48, num_actions=5)
    assert (xl.d_model, xl.num_layers, xl.num_heads, xl.d_ff, xl.memory_len) == (64, 2, 4, 96, 128)
    assert (xl.ff_activation, xl.attn_out_bias, xl.final_norm, xl.norm_bias) == ("silu", True, True, False)
    assert (xl.critic_activation, xl.actor_layers, xl.memory_init, xl.sublayer_relu) == ("relu", 2, "zeros", False)
    assert (xl.latent_dim, xl.token_num_latents, xl.token_num_layers, xl.token_width) == (64, 12, 2, 21)
    ag = preset("metta_cortex_agalite", obs_dim=48, num_actions=5)
    assert (ag.num_heads, ag.head_dim, ag.eta, ag.num_oscillators, ag.agalite_tick) == (8, 8, 4, 2, "cortex")
    assert preset("metta_trxl", obs_dim=48, num_actions=5).memory_holds == "outputs"
    assert preset("metta_sliding", obs_dim=48, num_actions=5).latent_dim == 64
    with pytest.raises(ConfigError, match="has one size"):
        preset("metta_trxl", 48, 5, size="metta_small")


def test_agalite_preset_matches_the_official_block():
    cfg = preset("agalite", 4, 2)
    assert cfg.sublayer_relu and cfg.layer_norm_eps == 1e-6


def test_version_1_agalite_configs_keep_their_sublayer_relus():
    d = preset("agalite", 4, 2, sublayer_relu=False).to_dict()
    assert PolicyConfig.from_dict(d).sublayer_relu is False  # version 2 reads the field as written
    assert PolicyConfig.from_dict({**d, "schema_version": 1}).sublayer_relu is True
    trxl = {**preset("trxl", 4, 2).to_dict(), "schema_version": 1}
    assert PolicyConfig.from_dict(trxl).sublayer_relu is False


def test_token_value_norms_round_trip_as_a_hashable_tuple():
    cfg = preset("mlp", 6, 2, encoder="tokens", token_value_norms=[1.0, 255.0])
    assert cfg.token_value_norms == (1.0, 255.0) and hash(cfg)
    assert json.loads(cfg.to_json())["token_value_norms"] == [1.0, 255.0]
    assert PolicyConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"encoder": "cnn"}, r"encoder='cnn': must be one of \('mlp', 'tokens'\)"),
        ({"ff_activation": "tanh"}, r"ff_activation='tanh': must be one of"),
        ({"critic_activation": "gelu"}, r"critic_activation='gelu'"),
        ({"agalite_tick": "metta"}, r"agalite_tick='metta'"),
        ({"agalite_kernel": "softplus"}, r"agalite_kernel='softplus': must be one of \('relu', 'eluplus1'\)"),
        ({"memory_init": "random"}, r"memory_init='random'"),
        ({"memory_holds": "both"}, r"memory_holds='both'"),
        ({"actor_layers": 0}, r"actor_layers=0: must be 1..8"),
        ({"final_norm": 1}, r"final_norm=1: must be True or False"),
        ({"encoder": "tokens", "token_num_heads": 3}, r"token_num_heads=3: must divide the Perceiver width 16"),
        ({"encoder": "tokens", "token_grid_size": 17}, r"token_grid_size=17: must be in 2..16"),
        ({"encoder": "tokens", "token_attr_vocab": 300}, r"token_attr_vocab=300: must be in 1..256"),
        ({"encoder": "tokens", "token_value_norms": (1.0, 0.0)}, r"token_value_norms=\(1.0, 0.0\): must be"),
    ],
)
def test_bad_option_values_name_the_field(over, message):
    with pytest.raises(ConfigError, match=message):
        preset("trxl", 6, 2, d_model=16, num_heads=2, **over)


def test_slot_rejects_the_token_encoder():
    with pytest.raises(ConfigError, match="encoder='tokens': the slot variant reads flat observations"):
        preset("slot", 9, 2, base_dim=4, slot_dim=5, encoder="tokens")
