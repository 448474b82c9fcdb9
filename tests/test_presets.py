"""Every preset at its full size: sequence mode == step mode, in JAX (the twins are
compared at small sizes in parity_tests/)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_tx
from jax_tx import config

STEPS = 3


def preset_for_test(variant: str) -> config.PolicyConfig:
    layout = dict(base_dim=4, slot_dim=3) if variant == "slot" else {}
    return config.preset(variant, obs_dim=10 if variant == "slot" else 6, num_actions=3, **layout)


@pytest.mark.parametrize("variant", sorted(config.PRESETS))
def test_full_size_preset_sequence_equals_steps(variant):
    cfg = preset_for_test(variant)
    model = jax_tx.make_policy(cfg)
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(2, STEPS, cfg.obs_dim)), jnp.float32)
    reset = jnp.asarray([[True, False, False], [False, True, False]])
    aux = {"prev_action": jnp.asarray(rng.integers(0, 3, (2, STEPS))), "prev_reward": jnp.ones((2, STEPS))}
    params = jax.jit(model.init)(jax.random.PRNGKey(0), obs, reset, jax_tx.initial_memory(cfg, 2), **aux)
    apply = jax.jit(model.apply)
    seq_out, seq_mem = apply(params, obs, reset, jax_tx.initial_memory(cfg, 2), **aux)
    mem, step_values, step_logits = jax_tx.initial_memory(cfg, 2), [], []
    for t in range(STEPS):
        sl = slice(t, t + 1)
        out, mem = apply(params, obs[:, sl], reset[:, sl], mem, **{k: v[:, sl] for k, v in aux.items()})
        step_values.append(out.value)
        step_logits.append(jax.tree_util.tree_leaves(out.logits))
    np.testing.assert_allclose(jnp.concatenate(step_values, 1), seq_out.value, rtol=1e-5, atol=1e-5)
    for head, seq_head in enumerate(jax.tree_util.tree_leaves(seq_out.logits)):
        step_head = jnp.concatenate([s[head] for s in step_logits], 1)
        np.testing.assert_allclose(step_head, seq_head, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(mem), jax.tree_util.tree_leaves(seq_mem), strict=True):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-5, atol=1e-5)
