"""A PyTorch PPO loop, the same algorithm as jax_tx/ppo (rollout.py, advantages.py, update.py, trainer.py).

    loop = TorchPPO(tcfg)                  # TrainConfig; env from torch_ref/envs.py (tmaze, repeat_previous)
    metrics = loop.iteration()             # rollout -> GAE -> segment BPTT update; dict of floats

One iteration, as in jax_tx/ppo/trainer.py (time-major [T, B] tensors, T = n H):
    rollout   policy in step mode (T = 1 calls, memory carried, no_grad); a_t ~ Categorical(logits);
              the memory at the first step of each of the n segments is kept; V(final_obs) on truncation
    GAE       torch_ref.ppo.bootstrap_values + gae (plain GAE)
    update    S = n B segments (s = i B + b), each recomputed in sequence mode from its stored memory;
              update_epochs passes over random minibatches of S / num_minibatches segments;
              torch_ref.ppo.ppo_loss, clip_by_global_norm, Adam; schedules as jax_tx/ppo/schedules.py
The policy runs on `device` (CPU or CUDA), the env on the CPU (obs / actions copied each step).
Eager torch throughout (the twin of a jitted JAX iteration); V-trace is not implemented here.
"""

from __future__ import annotations

import math
import time

import torch

import torch_ref
from jax_tx.config import PPOConfig, TrainConfig
from torch_ref import envs as torch_envs
from torch_ref.ppo import bootstrap_values, gae, make_optimizer, ppo_loss, sgd_step


def tree_map(fn, tree):
    """fn on every tensor of nested dicts / lists / tuples (structure kept)."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_map(fn, v) for v in tree)
    return fn(tree)


def tree_cat(trees: list):
    """Concatenate a list of same-structure trees along axis 0 (leaves [B, ...] -> [len * B, ...])."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: tree_cat([t[k] for t in trees]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(tree_cat([t[i] for t in trees]) for i in range(len(first)))
    return torch.cat(trees, dim=0)


def schedule_values(ppo: PPOConfig, iteration: int, num_iterations: int) -> dict[str, float]:
    """The values of jax_tx/ppo/schedules.py at `iteration` (learning rate, ent, clip, value clip)."""
    w = ppo.lr_warmup_iterations
    q = min(max((iteration - w) / max(num_iterations - 1 - w, 1), 0.0), 1.0)
    if iteration < w:
        lr = ppo.learning_rate * (iteration + 1.0) / max(w, 1)
    elif ppo.lr_schedule == "cosine":
        lr = ppo.lr_final + (ppo.learning_rate - ppo.lr_final) * 0.5 * (1.0 + math.cos(math.pi * q))
    elif ppo.lr_schedule == "linear":
        lr = ppo.learning_rate + (ppo.lr_final - ppo.learning_rate) * q
    else:
        lr = ppo.learning_rate
    p = min(max(iteration / max(num_iterations - 1, 1), 0.0), 1.0)
    clip = math.exp((1.0 - p) * math.log(ppo.clip_coef) + p * math.log(ppo.clip_coef_final))
    return {
        "learning_rate": lr,
        "ent_coef": ppo.ent_coef + (ppo.ent_coef_final - ppo.ent_coef) * p,
        "clip_coef": clip,
        "vf_clip_coef": ppo.vf_clip_coef + (ppo.vf_clip_coef_final - ppo.vf_clip_coef) * p,
    }


class TorchPPO:
    """Rollout + GAE + update for a TrainConfig on a torch-vectorised env (module docstring)."""

    def __init__(self, tcfg: TrainConfig, seed: int | None = None, device: str = "cpu"):
        if tcfg.ppo.vtrace:
            raise ValueError("torch_ref.ppo_loop implements plain GAE only; set ppo.vtrace=false")
        if tcfg.policy.variant == "slot":
            raise ValueError("variant 'slot' has several action heads; torch_ref.ppo_loop supports one head")
        seed = tcfg.seed if seed is None else seed
        torch.manual_seed(seed)
        self.tcfg, self.cfg, self.ppo = tcfg, tcfg.policy, tcfg.ppo
        self.env = torch_envs.make_env(tcfg.env, tcfg.num_envs, seed, **tcfg.env_kwargs)
        if (self.env.obs_dim, self.env.num_actions) != (self.cfg.obs_dim, self.cfg.num_actions):
            raise ValueError(
                f"policy has obs_dim={self.cfg.obs_dim}, num_actions={self.cfg.num_actions} but env {tcfg.env!r} "
                f"has obs_dim={self.env.obs_dim}, num_actions={self.env.num_actions}"
            )
        self.device = torch.device(device)
        self.model = torch_ref.make_policy(self.cfg).to(self.device)
        self.dropout = self.cfg.dropout > 0 or self.cfg.attn_dropout > 0
        self.optimizer = make_optimizer(self.model.parameters(), self.ppo, self.ppo.learning_rate)
        self.uses_prev = self.cfg.aux_tokens or self.cfg.variant == "sliding"
        self.gen = torch.Generator().manual_seed(seed + 1)  # minibatch order (CPU)
        self.sample_gen = torch.Generator(device=self.device).manual_seed(seed + 2)  # actions
        b = tcfg.num_envs
        dev = self.device
        self.obs = self.env.reset().to(dev)
        self.reset = torch.ones(b, dtype=torch.bool, device=dev)
        self.memory = tree_map(lambda x: x.to(dev), torch_ref.initial_memory(self.cfg, b))
        self.prev_action = torch.full((b,), -1, dtype=torch.int64, device=dev)
        self.prev_reward = torch.zeros(b, device=dev)
        self.iteration_index = 0

    def _apply(self, obs, reset, memory, prev_action, prev_reward):
        """model over [B, T] inputs (prev_* only for the variants that read them)."""
        extra = (prev_action, prev_reward) if self.uses_prev else ()
        return self.model(obs, reset, memory, *extra)

    def _step(self, obs, reset, memory, prev_action, prev_reward):
        out, memory = self._apply(obs[:, None], reset[:, None], memory, prev_action[:, None], prev_reward[:, None])
        return out.logits[:, 0], out.value[:, 0], memory

    @torch.no_grad()
    def rollout(self) -> dict:
        """num_segments * H steps from every env: time-major tensors, segment memories, last value."""
        self.model.eval()
        h = self.ppo.bptt_horizon
        n = self.tcfg.rollout_steps // h
        keys = ("obs", "reset", "prev_action", "prev_reward", "action", "logp", "value", "reward")
        keys += ("terminated", "truncated", "truncated_value", "success", "episode_return")
        buf = {k: [] for k in keys}
        seg_memory = []
        for t in range(n * h):
            if t % h == 0:
                seg_memory.append(tree_map(lambda x: x.clone(), self.memory))
            logits, value, memory = self._step(self.obs, self.reset, self.memory, self.prev_action, self.prev_reward)
            logp_all = torch.log_softmax(logits.float(), dim=-1)
            action = torch.multinomial(logp_all.exp(), 1, generator=self.sample_gen)[:, 0]
            step_out = self.env.step(action.cpu())  # the env runs on the CPU, as a host env would
            obs, reward, terminated, truncated, info = tree_map(lambda x: x.to(self.device), step_out)
            truncated_value = torch.zeros_like(value)
            if bool(truncated.any()):
                final, no_reset = info["final_observation"], torch.zeros_like(self.reset)
                _, truncated_value, _ = self._step(final, no_reset, memory, action, reward)
            done = terminated | truncated
            step = {
                "obs": self.obs,
                "reset": self.reset,
                "prev_action": self.prev_action,
                "prev_reward": self.prev_reward,
                "action": action,
                "logp": logp_all.gather(-1, action[:, None])[:, 0],
                "value": value.float(),
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "truncated_value": truncated_value.float(),
                "success": info["success"],
                "episode_return": info["episode_return"],
            }
            for k, v in step.items():
                buf[k].append(v)
            self.obs, self.reset, self.memory = obs, done, memory
            self.prev_action = torch.where(done, -1, action)
            self.prev_reward = torch.where(done, 0.0, reward)
        _, last_value, _ = self._step(self.obs, self.reset, self.memory, self.prev_action, self.prev_reward)
        out = {k: torch.stack(v) for k, v in buf.items()}
        out["segment_memory"] = tree_cat(seg_memory)  # segment s = i * B + b
        out["last_value"] = last_value.float()
        return out

    def segments(self, ro: dict) -> dict:
        """GAE over the rollout and the cut into segments: leaves [H, S] (memory [S, ...])."""
        ppo, h = self.ppo, self.ppo.bptt_horizon
        next_values = bootstrap_values(
            ro["value"], ro["last_value"], ro["truncated_value"], ro["terminated"], ro["truncated"]
        )
        done = ro["terminated"] | ro["truncated"]
        adv = gae(ro["reward"], ro["value"], next_values, done.float(), ppo.gamma, ppo.gae_lambda)

        def cut(x):  # [T, B, ...] -> [H, n B, ...], s = i B + b
            t, b = x.shape[:2]
            x = x.reshape((t // h, h, b) + x.shape[2:])
            return x.transpose(0, 1).reshape((h, (t // h) * b) + x.shape[3:])

        keys = ("obs", "reset", "prev_action", "prev_reward", "action", "logp", "value")
        seg = {k: cut(ro[k]) for k in keys}
        seg["advantage"], seg["returns"] = cut(adv), cut(adv + ro["value"])
        seg["memory"] = ro["segment_memory"]
        return seg

    def update(self, seg: dict, sched: dict) -> dict:
        """update_epochs passes over shuffled minibatches of segments; mean loss terms."""
        ppo = self.ppo
        for group in self.optimizer.param_groups:
            group["lr"] = sched["learning_rate"]
        self.model.train(self.dropout)
        num_seg = seg["action"].shape[1]
        mb_size = num_seg // ppo.num_minibatches
        sums: dict[str, float] = {}
        count = 0
        for _ in range(ppo.update_epochs):
            order = torch.randperm(num_seg, generator=self.gen)
            for j in range(ppo.num_minibatches):
                idx = order[j * mb_size : (j + 1) * mb_size]
                bt = lambda x, idx=idx: x[:, idx].transpose(0, 1)  # noqa: E731  [H, M] -> [M, H]
                memory = tree_map(lambda x, idx=idx: x[idx], seg["memory"])
                out, _ = self._apply(
                    bt(seg["obs"]), bt(seg["reset"]), memory, bt(seg["prev_action"]), bt(seg["prev_reward"])
                )
                terms = ppo_loss(
                    out.logits.transpose(0, 1),
                    out.value.transpose(0, 1),
                    seg["action"][:, idx],
                    seg["logp"][:, idx],
                    seg["value"][:, idx],
                    seg["advantage"][:, idx],
                    seg["returns"][:, idx],
                    clip_coef=sched["clip_coef"],
                    vf_clip_coef=sched["vf_clip_coef"],
                    ent_coef=sched["ent_coef"],
                    vf_coef=ppo.vf_coef,
                    norm_adv=ppo.norm_adv,
                    clip_vloss=ppo.clip_vloss,
                )
                gnorm = sgd_step(self.model, self.optimizer, terms["total"], ppo.max_grad_norm)
                scalars = {k: v for k, v in terms.items() if k != "head_entropy"}  # per-head list: factored heads only
                for k, v in {**scalars, "grad_norm": gnorm}.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                count += 1
        self.model.eval()
        return {k: v / count for k, v in sums.items()}

    def iteration(self) -> dict:
        """One PPO iteration: metrics (loss terms, episodes, mean return and success of episodes that ended)."""
        sched = schedule_values(self.ppo, self.iteration_index, self.tcfg.num_iterations)
        ro = self.rollout()
        metrics = self.update(self.segments(ro), sched)
        done = (ro["terminated"] | ro["truncated"]).float()
        n = float(done.sum())
        metrics["episodes"] = n
        metrics["episode_return"] = float((ro["episode_return"] * done).sum()) / n if n else math.nan
        metrics["success"] = float((ro["success"] * done).sum()) / n if n else math.nan
        self.iteration_index += 1
        return metrics

    def fit(self, num_iterations: int | None = None, echo=None) -> list[dict]:
        """Run iterations (default: the TrainConfig's); one metrics dict per iteration, with wall seconds."""
        rows = []
        for _ in range(self.tcfg.num_iterations if num_iterations is None else num_iterations):
            start = time.perf_counter()
            m = self.iteration()
            m["wall_s"] = time.perf_counter() - start
            rows.append(m)
            if echo is not None:
                echo(f"torch iteration {self.iteration_index}: success {m['success']:.3f} ({m['wall_s']:.2f}s)")
        return rows
