"""PPO twins: GAE / V-trace, the loss terms and one clipped Adam(W) step agree between
jax_tx.ppo and torch_ref.ppo on the same batch, params and hyperparameters (float32 <= 1e-5)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import torch_ref
from jax_tx import config, convert
from jax_tx.envs import make_env
from jax_tx.ppo import advantages as jadv
from jax_tx.ppo.schedules import schedule_values
from jax_tx.ppo.trainer import Trainer
from jax_tx.ppo.update import make_segments, set_learning_rate, sgd_step, take
from torch_ref import ppo as tppo

TOL = 1e-5


def test_gae_and_vtrace_twins_agree():
    rng = np.random.default_rng(0)
    t, b = 11, 6
    r, v, tv, ratio = (rng.normal(size=(t, b)).astype(np.float32) for _ in range(4))
    ratio = np.exp(0.3 * ratio).astype(np.float32)
    last, tail = (rng.normal(size=(b,)).astype(np.float32) for _ in range(2))
    term = rng.random((t, b)) < 0.2
    trunc = (rng.random((t, b)) < 0.1) & ~term
    done = term | trunc
    jnv = jadv.bootstrap_values(*map(jnp.asarray, (v, last, tv, term, trunc)))
    tnv = tppo.bootstrap_values(*map(torch.as_tensor, (v, last, tv, term, trunc)))
    np.testing.assert_array_equal(np.asarray(jnv), tnv.numpy())
    for kw in ({}, {"rho_clip": 1.0, "c_clip": 0.9}):
        jr = jnp.asarray(ratio) if kw else None
        trr = torch.as_tensor(ratio) if kw else None
        ja = jadv.gae(
            jnp.asarray(r), jnp.asarray(v), jnv, jnp.asarray(done), 0.97, 0.9, ratio=jr, tail=jnp.asarray(tail), **kw
        )
        tt = [torch.as_tensor(x) for x in (r, v)]
        ta = tppo.gae(*tt, tnv, torch.as_tensor(done), 0.97, 0.9, ratio=trr, tail=torch.as_tensor(tail), **kw)
        np.testing.assert_allclose(np.asarray(ja), ta.numpy(), rtol=0, atol=TOL)


@functools.cache
def rollout_minibatch(variant: str):
    """A real rollout minibatch (segments with stored memory), computed once per variant."""
    tc, tr, tmodel, params, _ = minibatch_pair(variant, "adam", with_batch=False)
    state = tr.init()
    _, ro, adv, nv = jax.jit(tr.collect)(params, state.carry, state.key)
    seg = make_segments(ro.transitions, ro.segment_memory, adv, nv, tc.ppo.bptt_horizon)
    return take(seg, jnp.arange(0, seg.tail.shape[0], 2))


def minibatch_pair(variant: str, optimizer: str, with_batch: bool = True):
    """A real rollout minibatch (segments with stored memory), the same weights in both twins."""
    env = make_env("tmaze", corridor_length=2)
    pc = config.preset(
        variant, env.obs_dim, env.num_actions, d_model=16, num_layers=1, num_heads=2, d_ff=32, memory_len=6,
        actor_hidden=16, critic_hidden=16,
    )  # fmt: skip
    ppo = config.PPOConfig(
        bptt_horizon=4, num_minibatches=2, optimizer=optimizer, weight_decay=0.05, max_grad_norm=0.05,
        learning_rate=3e-3, ent_coef=0.02, adam_eps=1e-6,
    )  # fmt: skip
    tc = config.TrainConfig(policy=pc, ppo=ppo, env="tmaze", env_kwargs={"corridor_length": 2}, num_envs=4,
                            rollout_steps=16, seed=1)  # fmt: skip
    torch.manual_seed(0)
    tmodel = torch_ref.make_policy(pc)
    params = convert.torch_to_flax(tmodel.state_dict(), pc)
    tr = Trainer(tc)
    return tc, tr, tmodel, params, rollout_minibatch(variant) if with_batch else None


def torch_minibatch_terms(tmodel, pc, mb, sched, ppo):
    to_t = lambda x: torch.as_tensor(np.array(x))  # noqa: E731
    bt = lambda x: to_t(x).transpose(0, 1)  # noqa: E731
    memory = {k: to_t(v) for k, v in mb.memory.items()}
    out, _ = tmodel(bt(mb.obs), bt(mb.reset), memory)
    return tppo.ppo_loss(
        out.logits.transpose(0, 1),
        out.value.transpose(0, 1),
        to_t(mb.action),
        to_t(mb.logp),
        to_t(mb.value),
        to_t(mb.advantage),
        to_t(mb.returns),
        clip_coef=float(sched.clip_coef),
        vf_clip_coef=float(sched.vf_clip_coef),
        ent_coef=float(sched.ent_coef),
        vf_coef=ppo.vf_coef,
        norm_adv=ppo.norm_adv,
        clip_vloss=ppo.clip_vloss,
    )


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("variant", ["trxl", "mlp"])
def test_loss_terms_and_one_clipped_step_agree(variant, optimizer):
    tc, tr, tmodel, params, mb = minibatch_pair(variant, optimizer)
    ppo, pc = tc.ppo, tc.policy
    sched = jax.tree_util.tree_map(float, schedule_values(ppo, 0, tc.num_iterations))
    # perturb the params so the ratio is not 1 and the clipped branches are active
    noisy = jax.tree_util.tree_map(lambda x: x + 0.05 * jax.random.normal(jax.random.PRNGKey(x.size), x.shape), params)
    tmodel.load_state_dict(convert.flax_to_torch(noisy, pc))

    # one compiled step (as in the trainer) gives both the loss terms at the noisy params and the updated params
    opt_state = set_learning_rate(tr.optimizer.init(noisy), sched.learning_rate)
    step = jax.jit(sgd_step, static_argnums=(0, 1, 2, 3))
    new_params, _, jterms, gnorm = step(tr.model, pc, ppo, tr.optimizer, sched, noisy, opt_state, mb, None)
    tterms = torch_minibatch_terms(tmodel, pc, mb, sched, ppo)
    for name in ("total", "policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"):
        assert abs(float(getattr(jterms, name)) - float(tterms[name].detach())) <= TOL, name
    assert float(jterms.clipfrac) > 0 and float(jterms.approx_kl) > 1e-4

    toptim = tppo.make_optimizer(tmodel.parameters(), ppo, sched.learning_rate)
    tnorm = tppo.sgd_step(tmodel, toptim, tterms["total"], ppo.max_grad_norm)
    assert float(gnorm) > ppo.max_grad_norm  # clipping is exercised
    assert abs(float(gnorm) - float(tnorm)) <= TOL * max(1.0, float(gnorm))
    tparams = convert.torch_to_flax(tmodel.state_dict(), pc)
    diffs = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), new_params, tparams)
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), new_params, noisy)
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-3
    assert max(jax.tree_util.tree_leaves(diffs)) <= TOL
