"""The timed cases of `jax-tx bench`: one variant's train step, rollout step and whole PPO iteration, both twins.

Every case holds its callables as `timers: {name: fn(iters) -> seconds per call}`; the CLI interleaves them.

  TrainCase   forward over [B, T] segments (random obs, resets at t = 0 and with probability p elsewhere, memory
              from initial_memory) + L = -mean(log_softmax(logits)[a] * adv) + 0.5 mean((value - ret)^2)
              + backward + Adam. jax: one jax.jit (params and optimizer state donated); torch_eager;
              torch_compile (torch.compile of the same module; its first call's wall time is compile_s).
  RolloutCase one policy step (T = 1) for N envs, memory carried from call to call: jitted apply vs torch no_grad.
  EndToEnd    env steps/s of PPO iterations on a JAX-native task: jax_tx.ppo.trainer.Trainer (one jitted iteration)
              vs torch_ref.ppo_loop.TorchPPO (eager), the same TrainConfig.
Weights: the torch init, converted with jax_tx.io.convert.torch_to_flax, so both twins start equal.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

import torch_ref
from jax_tx.config import PolicyConfig, TrainConfig
from jax_tx.io import convert
from jax_tx.models.policy import initial_memory, make_policy


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _to(tree, device: str):
    if isinstance(tree, dict):
        return {k: _to(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to(v, device) for v in tree)
    return tree.to(device)


def _torch_twin(cfg: PolicyConfig, seed: int, device: str):
    """(torch module on device, eval mode; flax variables with the same weights)."""
    torch.manual_seed(seed)
    tmodel = torch_ref.make_policy(cfg)
    tmodel.train(False)
    variables = jax.device_put(jax.tree_util.tree_map(jnp.asarray, convert.torch_to_flax(tmodel.state_dict(), cfg)))
    return tmodel.to(device), variables


def _timed(fn):
    """fn() once per call, n calls: seconds per call (fn must block until its work is done when it returns)."""

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n

    return run


def flops_of(compiled) -> float | None:
    """XLA's cost-analysis FLOP count of a compiled jax function (None when the backend gives none)."""
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"]) if cost and "flops" in cost else None
    except Exception:  # noqa: BLE001  (cost analysis is optional per backend)
        return None


class TrainCase:
    def __init__(
        self,
        cfg: PolicyConfig,
        batch: int,
        steps: int,
        p_reset: float,
        lr: float,
        device: str,
        compile_backend: str | None,
        seed: int = 0,
    ):
        tmodel, variables = _torch_twin(cfg, seed, device)
        rng = np.random.default_rng(seed)
        obs = rng.normal(size=(batch, steps, cfg.obs_dim)).astype(np.float32)
        reset = rng.random((batch, steps)) < p_reset
        reset[:, 0] = True
        actions = rng.integers(0, cfg.num_actions, size=(batch, steps)).astype(np.int32)
        adv, ret = rng.normal(size=(2, batch, steps)).astype(np.float32)
        model, tx = make_policy(cfg), optax.adam(lr)

        def loss_fn(params, obs, reset, mem, actions, adv, ret):
            out, _ = model.apply(params, obs, reset, mem)
            logp = jnp.take_along_axis(jax.nn.log_softmax(out.logits, axis=-1), actions[..., None], axis=-1)[..., 0]
            return -jnp.mean(logp * adv) + 0.5 * jnp.mean((out.value - ret) ** 2)

        def train_step(params, opt_state, batch):
            loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self.state = [variables, tx.init(variables)]
        jbatch = jax.device_put((obs, reset, initial_memory(cfg, batch), actions, adv, ret))
        start = time.perf_counter()
        compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(*self.state, jbatch).compile()
        self.compile_s = {"jax": time.perf_counter() - start}
        self.flops = flops_of(compiled)
        self.loss0 = {"jax": float(jax.jit(loss_fn)(self.state[0], *jbatch))}

        def jax_step():
            *self.state, loss = compiled(*self.state, jbatch)
            jax.block_until_ready(loss)

        tb = _to(
            (
                torch.as_tensor(obs),
                torch.as_tensor(reset),
                torch_ref.initial_memory(cfg, batch),
                torch.as_tensor(actions, dtype=torch.int64),
                torch.as_tensor(adv),
                torch.as_tensor(ret),
            ),
            device,
        )
        opt = torch.optim.Adam(tmodel.parameters(), lr=lr)

        def torch_step(module):
            def step():
                opt.zero_grad(set_to_none=True)
                out, _ = module(*tb[:3])
                logp = torch.log_softmax(out.logits, dim=-1).gather(-1, tb[3][..., None])[..., 0]
                loss = -(logp * tb[4]).mean() + 0.5 * ((out.value - tb[5]) ** 2).mean()
                loss.backward()
                opt.step()
                _sync(device)
                return loss

            return step

        with torch.no_grad():
            out, _ = tmodel(*tb[:3])
            logp = torch.log_softmax(out.logits, dim=-1).gather(-1, tb[3][..., None])[..., 0]
            self.loss0["torch"] = float(-(logp * tb[4]).mean() + 0.5 * ((out.value - tb[5]) ** 2).mean())
        self.timers = {"jax": _timed(jax_step), "torch_eager": _timed(torch_step(tmodel))}
        if compile_backend:
            step = torch_step(torch.compile(tmodel, backend=compile_backend))
            start = time.perf_counter()
            step()
            self.compile_s["torch_compile"] = time.perf_counter() - start
            self.timers["torch_compile"] = _timed(step)


class RolloutCase:
    def __init__(self, cfg: PolicyConfig, num_envs: int, p_reset: float, device: str, seed: int = 0):
        tmodel, variables = _torch_twin(cfg, seed, device)
        rng = np.random.default_rng(seed + 1)
        obs = rng.normal(size=(num_envs, 1, cfg.obs_dim)).astype(np.float32)
        reset = rng.random((num_envs, 1)) < p_reset
        model = make_policy(cfg)
        jin = jax.device_put((obs, reset))
        self.mem = {"jax": initial_memory(cfg, num_envs), "torch": _to(torch_ref.initial_memory(cfg, num_envs), device)}
        start = time.perf_counter()
        step = jax.jit(lambda p, o, r, m: model.apply(p, o, r, m)).lower(variables, *jin, self.mem["jax"]).compile()
        self.compile_s = {"jax": time.perf_counter() - start}
        self.flops = flops_of(step)
        tin = _to((torch.as_tensor(obs), torch.as_tensor(reset)), device)

        def jax_step():
            out, self.mem["jax"] = step(variables, *jin, self.mem["jax"])
            jax.block_until_ready(out)

        @torch.no_grad()
        def torch_step():
            _, self.mem["torch"] = tmodel(*tin, self.mem["torch"])
            _sync(device)

        self.timers = {"jax": _timed(jax_step), "torch_eager": _timed(torch_step)}


class EndToEnd:
    """Whole PPO iterations (rollout + GAE + update) of one TrainConfig in both learners; times per iteration."""

    def __init__(self, tcfg: TrainConfig, device: str = "cpu"):
        from jax_tx.ppo.trainer import Trainer
        from torch_ref.ppo_loop import TorchPPO

        self.steps_per_iteration = tcfg.steps_per_iteration
        trainer = Trainer(tcfg.replace(iterations_per_call=1))
        self.state = trainer.init()
        start = time.perf_counter()
        self.state, metrics = trainer.run(self.state)
        jax.block_until_ready(metrics)
        self.compile_s = {"jax": time.perf_counter() - start}
        self.loop = TorchPPO(tcfg, device=device)

        def jax_iteration():
            self.state, metrics = trainer.run(self.state)
            jax.block_until_ready(metrics)

        def torch_iteration():
            self.loop.iteration()
            _sync(device)

        self.timers = {"jax": _timed(jax_iteration), "torch_loop": _timed(torch_iteration)}
