"""torch_ref's PPO loop and torch-vectorised tasks: the same dynamics as the JAX tasks, the same segment logic."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jax_tx import config
from jax_tx.envs import make_env
from torch_ref import envs as torch_envs
from torch_ref.ppo_loop import TorchPPO, schedule_values, tree_map


def _tmaze_episode(step, obs, plan):
    """Play `plan(obs_first, t)` until the episode ends; (rewards, final info)."""
    first, rewards, t = obs, [], 0
    while True:
        obs, reward, term, trunc, info = step(plan(first, t))
        rewards.append(float(reward))
        t += 1
        if bool(term) or bool(trunc):
            return rewards, info, bool(term), bool(trunc)


@pytest.mark.parametrize("step_reward", [0.0, -0.01])
def test_torch_tmaze_matches_jax_tmaze_on_the_same_cue(step_reward):
    corridor = 3
    jenv = make_env("tmaze", corridor_length=corridor, step_reward=step_reward)
    jstep = jax.jit(jenv.step)
    plans = {
        "right_turn": lambda first, t: 0 if t < corridor else (1 if first[0] == 1 else 2),
        "wrong_turn": lambda first, t: 0 if t < corridor else (2 if first[0] == 1 else 1),
        "never_turn": lambda first, t: 0,
    }
    key = jax.random.PRNGKey(3)
    for name, plan in plans.items():
        jobs, jstate = jenv.reset(key)
        tenv = torch_envs.TMaze(1, corridor_length=corridor, step_reward=step_reward)
        tenv.reset()
        cue = int(np.argmax(np.asarray(jobs)[:2]))
        tenv.cue[:] = cue  # the same episode in both twins
        tobs = tenv._observe(tenv.pos).scatter(1, tenv.cue[:, None], 1.0)[0]
        assert np.array_equal(np.asarray(jobs), tobs.numpy())

        def jax_step(a, box=[jstate]):  # noqa: B006
            o, box[0], r, te, tr, info = jstep(jax.random.PRNGKey(0), box[0], jnp.int32(a))
            return o, r, te, tr, info

        def torch_step(a, tenv=tenv):
            o, r, te, tr, info = tenv.step(torch.tensor([a]))
            return o[0], r[0], te[0], tr[0], {k: v[0] for k, v in info.items()}

        jr, jinfo, jterm, jtrunc = _tmaze_episode(jax_step, np.asarray(jobs), plan)
        tr_, tinfo, tterm, ttrunc = _tmaze_episode(torch_step, tobs.numpy(), plan)
        assert jr == tr_ and (jterm, jtrunc) == (tterm, ttrunc), name
        for k in ("success", "episode_return", "episode_length"):
            assert float(jinfo[k]) == float(tinfo[k]), (name, k)
    assert (jterm, jtrunc, len(jr)) == (False, True, jenv.max_steps)  # never_turn ends by the time limit
    assert jr == [np.float32(step_reward)] * jenv.max_steps  # every step of it pays the step cost


def test_torch_repeat_previous_rewards_the_symbol_k_steps_back():
    k, length = 2, 7
    env = torch_envs.RepeatPrevious(3, k=k, num_symbols=3, episode_length=length)
    seen = [env.reset().argmax(-1)]
    total = torch.zeros(3)
    for t in range(length):
        answer = seen[t - k] if t >= k else torch.zeros(3, dtype=torch.int64)
        obs, reward, term, trunc, info = env.step(answer)
        total += reward
        seen.append(obs.argmax(-1))
    assert torch.all(term) and not torch.any(trunc)
    assert torch.allclose(info["episode_return"], torch.ones(3)) and torch.all(info["success"] == 1.0)
    assert torch.all(env.time == 0) and torch.allclose(total, torch.ones(3))  # auto-reset after the last step


def test_torch_loop_segments_recompute_the_rollout_exactly():
    """Sequence mode from each stored segment memory gives the rollout's log-probs (ratio = 1 before any update)."""
    pc = config.preset("gtrxl", 4, 3, d_model=16, num_layers=1, num_heads=2, d_ff=16, memory_len=4)
    ppo = config.PPOConfig(bptt_horizon=4, num_minibatches=2, update_epochs=1)
    tc = config.TrainConfig(policy=pc, ppo=ppo, env="tmaze", env_kwargs={"corridor_length": 2}, num_envs=4,
                            rollout_steps=12, total_steps=4 * 12 * 3)  # fmt: skip
    loop = TorchPPO(tc)
    seg = loop.segments(loop.rollout())
    assert seg["action"].shape == (4, 12)  # H x S, S = 3 segments x 4 envs
    assert bool(seg["reset"][0, :4].all())  # segment 0 of every env starts with the first reset
    with torch.no_grad():
        out, _ = loop._apply(*(seg[k].transpose(0, 1) for k in ("obs", "reset")), seg["memory"], None, None)
    logp = torch.log_softmax(out.logits.transpose(0, 1), -1).gather(-1, seg["action"][..., None])[..., 0]
    assert float((logp - seg["logp"]).abs().max()) <= 1e-5
    before = [p.detach().clone() for p in loop.model.parameters()]
    metrics = loop.iteration()
    assert all(np.isfinite(v) or k in ("success", "episode_return") for k, v in metrics.items())
    assert any(not torch.equal(a, b) for a, b in zip(before, loop.model.parameters(), strict=True))  # it trained
    assert tree_map(lambda x: x.shape[0], seg["memory"]) == tree_map(lambda x: 12, seg["memory"])


def test_torch_schedules_match_the_jax_schedules():
    from jax_tx.ppo.schedules import schedule_values as jax_schedule

    ppo = config.PPOConfig(lr_warmup_iterations=2, lr_schedule="cosine")
    for it in (0, 1, 2, 5, 9):
        j, t = jax_schedule(ppo, it, 10), schedule_values(ppo, it, 10)
        for k, v in t.items():
            assert abs(float(getattr(j, k)) - v) <= 1e-6 * max(1.0, abs(v)), (it, k)
