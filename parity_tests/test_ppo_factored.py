"""Factored-action PPO twins: the slot policy's two masked heads (action type, slot) on slot_select give
the same loss terms, per-head entropies and clipped Adam step in jax_tx.ppo and torch_ref.ppo (fp32 <= 1e-5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch

import torch_ref
from jax_tx import config, convert
from jax_tx.envs import make_env
from jax_tx.ppo.heads import policy_num_actions
from jax_tx.ppo.schedules import schedule_values
from jax_tx.ppo.trainer import Trainer
from jax_tx.ppo.update import make_segments, set_learning_rate, sgd_step, take
from torch_ref import ppo as tppo

TOL = 1e-5
ENV = {"num_slots": 5, "min_active": 2, "episode_length": 3}


def slot_setup():
    env = make_env("slot_select", **ENV)
    pc = config.preset(
        "slot", env.obs_dim, policy_num_actions(env, "slot"), base_dim=env.base_dim, slot_dim=env.slot_dim,
        d_model=16, num_layers=1, num_heads=2, d_ff=32, lstm_hidden=16,
    )  # fmt: skip
    ppo = config.PPOConfig(
        bptt_horizon=4, num_minibatches=2, max_grad_norm=0.05, learning_rate=3e-3, ent_coef=0.02, adam_eps=1e-6
    )
    tc = config.TrainConfig(policy=pc, ppo=ppo, env="slot_select", env_kwargs=ENV, num_envs=4, rollout_steps=16, seed=1)
    torch.manual_seed(0)
    tmodel = torch_ref.make_policy(pc)
    params = convert.torch_to_flax(tmodel.state_dict(), pc)
    tr = Trainer(tc)
    state = tr.init()
    _, ro, adv, nv = jax.jit(tr.collect)(params, state.carry, state.key)
    seg = make_segments(ro.transitions, ro.segment_memory, adv, nv, ppo.bptt_horizon)
    return tc, tr, tmodel, params, take(seg, jnp.arange(0, seg.tail.shape[0], 2))


def test_factored_masked_loss_and_one_clipped_step_agree():
    tc, tr, tmodel, params, mb = slot_setup()
    ppo, pc = tc.ppo, tc.policy
    assert mb.action.shape[-1] == 2 and mb.mask.shape[-1] == 3 + 5
    assert not bool(mb.mask.all())  # some slots / types are masked in this batch
    sched = jax.tree_util.tree_map(float, schedule_values(ppo, 0, tc.num_iterations))
    noisy = jax.tree_util.tree_map(lambda x: x + 0.05 * jax.random.normal(jax.random.PRNGKey(x.size), x.shape), params)
    tmodel.load_state_dict(convert.flax_to_torch(noisy, pc))

    # one compiled step gives both the loss terms (at the noisy params) and the updated params
    opt_state = set_learning_rate(tr.optimizer.init(noisy), sched.learning_rate)
    step = jax.jit(sgd_step, static_argnums=(0, 1, 2, 3))
    new_params, _, jterms, gnorm = step(tr.model, pc, ppo, tr.optimizer, sched, noisy, opt_state, mb, None)
    to_t = lambda x: torch.as_tensor(np.array(x))  # noqa: E731
    bt = lambda x: to_t(x).transpose(0, 1)  # noqa: E731
    out, _ = tmodel(bt(mb.obs), bt(mb.reset), {k: to_t(v) for k, v in mb.memory.items()})
    tterms = tppo.ppo_loss(
        tuple(x.transpose(0, 1) for x in out.logits), out.value.transpose(0, 1), to_t(mb.action), to_t(mb.logp),
        to_t(mb.value), to_t(mb.advantage), to_t(mb.returns), clip_coef=sched.clip_coef,
        vf_clip_coef=sched.vf_clip_coef, ent_coef=sched.ent_coef, vf_coef=ppo.vf_coef, mask=to_t(mb.mask),
    )  # fmt: skip
    for name in ("total", "policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"):
        assert abs(float(getattr(jterms, name)) - float(tterms[name].detach())) <= TOL, name
    assert len(jterms.head_entropy) == 2
    for j, t in zip(jterms.head_entropy, tterms["head_entropy"], strict=True):
        assert abs(float(j) - float(t.detach())) <= TOL
    assert float(jterms.clipfrac) > 0 and float(jterms.approx_kl) > 1e-4

    toptim = tppo.make_optimizer(tmodel.parameters(), ppo, sched.learning_rate)
    tnorm = tppo.sgd_step(tmodel, toptim, tterms["total"], ppo.max_grad_norm)
    assert float(gnorm) > ppo.max_grad_norm
    assert abs(float(gnorm) - float(tnorm)) <= TOL * max(1.0, float(gnorm))
    tparams = convert.torch_to_flax(tmodel.state_dict(), pc)
    diffs = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), new_params, tparams)
    assert max(jax.tree_util.tree_leaves(diffs)) <= TOL
