"""The timed cases of `jax-tx bench`: one variant's train step, rollout step and whole PPO iteration, both twins.

Every case holds its callables as `timers: {name: fn(iters) -> seconds per unit}`; the CLI interleaves them.

  TrainCase   K Adam steps per timed call (K = steps_per_call, as the PPO update runs its minibatches), each on
              its own minibatch: forward over [B, T] segments (random obs, resets at t = 0 and with probability p
              elsewhere, memory from initial_memory) + L = -mean(log_softmax(logits)[a] * adv)
              + 0.5 mean((value - ret)^2) + backward + Adam. jax: one jax.jit of a lax.scan over the K stacked
              minibatches (params and optimizer state donated); torch_eager; torch_compile (torch.compile of the
              same module; its first call's wall time is compile_s). Unit: one step (call time / K).
  RolloutCase one policy step (T = 1) for N envs, memory carried from call to call: jitted apply vs torch no_grad.
  EndToEnd    env steps/s of PPO iterations on a JAX-native task: jax_tx.ppo.trainer.Trainer (iterations_per_call
              iterations in one jitted call; unit: one iteration = call time / iterations_per_call) vs
              torch_ref.ppo_loop.TorchPPO (eager, one iteration per call), the same TrainConfig.
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


def timed(fn, units_per_call: int = 1, finish=None):
    """fn(iters) -> seconds per unit: elapsed / (iters * units_per_call) over iters calls of fn.

    finish (e.g. jax.block_until_ready) is applied to the last call's result before the clock stops; without it
    fn itself must block until its work is done. units_per_call: the steps or iterations one call of fn does.
    """

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            out = fn()
        if finish is not None:
            finish(out)
        return (time.perf_counter() - start) / (n * units_per_call)

    return run


def flops_of(compiled) -> float | None:
    """XLA's cost-analysis FLOP count of a lowered or compiled jax function (None when the backend gives none)."""
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"]) if cost and "flops" in cost else None
    except Exception:  # noqa: BLE001  (cost analysis is optional per backend)
        return None


def minibatches(cfg: PolicyConfig, k: int, batch: int, steps: int, p_reset: float, seed: int) -> tuple:
    """k stacked random minibatches (obs [k, B, T, obs_dim], reset, actions, adv, ret [k, B, T]); reset at t = 0."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(k, batch, steps, cfg.obs_dim)).astype(np.float32)
    reset = rng.random((k, batch, steps)) < p_reset
    reset[:, :, 0] = True
    actions = rng.integers(0, cfg.num_actions, size=(k, batch, steps)).astype(np.int32)
    adv, ret = rng.normal(size=(2, k, batch, steps)).astype(np.float32)
    return obs, reset, actions, adv, ret


def segment_loss(model):
    """loss(params, obs, reset, mem, actions, adv, ret) of `model` over [B, T] segments:
    L = -mean(log_softmax(logits)[a] * adv) + 0.5 * mean((value - ret)^2)."""

    def loss(params, obs, reset, mem, actions, adv, ret):
        out, _ = model.apply(params, obs, reset, mem)
        logp = jnp.take_along_axis(jax.nn.log_softmax(out.logits, axis=-1), actions[..., None], axis=-1)[..., 0]
        return -jnp.mean(logp * adv) + 0.5 * jnp.mean((out.value - ret) ** 2)

    return loss


class TrainCase:
    """steps_per_call Adam steps per timed call, one per stacked minibatch; timers give seconds per step."""

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
        steps_per_call: int = 1,
    ):
        tmodel, variables = _torch_twin(cfg, seed, device)
        k = self.steps_per_call = steps_per_call
        data = minibatches(cfg, k, batch, steps, p_reset, seed)
        model, tx = make_policy(cfg), optax.adam(lr)
        loss_fn = segment_loss(model)
        self.num_params = sum(p.numel() for p in tmodel.parameters())

        def train_step(params, opt_state, mb, mem):
            obs, reset, actions, adv, ret = mb
            loss, grads = jax.value_and_grad(loss_fn)(params, obs, reset, mem, actions, adv, ret)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        def train_steps(params, opt_state, data, mem):
            def body(carry, mb):
                params, opt_state, loss = train_step(*carry, mb, mem)
                return (params, opt_state), loss

            (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), data)
            return params, opt_state, losses

        self.state = [variables, tx.init(variables)]
        jdata, jmem = jax.device_put(data), jax.device_put(initial_memory(cfg, batch))
        first = [x[0] for x in jdata]
        # FLOPs of one step from its own lowering: cost analysis counts a scan's body once, whatever K is
        self.flops = flops_of(jax.jit(train_step).lower(*self.state, first, jmem))
        start = time.perf_counter()
        compiled = jax.jit(train_steps, donate_argnums=(0, 1)).lower(*self.state, jdata, jmem).compile()
        self.compile_s = {"jax": time.perf_counter() - start}
        self.loss0 = {"jax": float(jax.jit(loss_fn)(self.state[0], first[0], first[1], jmem, *first[2:]))}

        def jax_steps():
            *self.state, losses = compiled(*self.state, jdata, jmem)
            jax.block_until_ready(losses)

        obs, reset, actions, adv, ret = _to(
            tuple(torch.as_tensor(x) for x in (*data[:2], data[2].astype(np.int64), *data[3:])), device
        )
        tmem = _to(torch_ref.initial_memory(cfg, batch), device)
        opt = self.torch_opt = torch.optim.Adam(tmodel.parameters(), lr=lr)

        def torch_loss(module, i):
            out, _ = module(obs[i], reset[i], tmem)
            logp = torch.log_softmax(out.logits, dim=-1).gather(-1, actions[i][..., None])[..., 0]
            return -(logp * adv[i]).mean() + 0.5 * ((out.value - ret[i]) ** 2).mean()

        def torch_steps(module):
            def steps():
                for i in range(k):
                    opt.zero_grad(set_to_none=True)
                    torch_loss(module, i).backward()
                    opt.step()
                _sync(device)

            return steps

        with torch.no_grad():
            self.loss0["torch"] = float(torch_loss(tmodel, 0))
        self.timers = {"jax": timed(jax_steps, k), "torch_eager": timed(torch_steps(tmodel), k)}
        if compile_backend:
            steps = torch_steps(torch.compile(tmodel, backend=compile_backend))
            start = time.perf_counter()
            steps()
            self.compile_s["torch_compile"] = time.perf_counter() - start
            self.timers["torch_compile"] = timed(steps, k)


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

        self.timers = {"jax": timed(jax_step), "torch_eager": timed(torch_step)}


class EndToEnd:
    """Whole PPO iterations (rollout + GAE + update) of one TrainConfig in both learners; times per iteration.

    jax: tcfg.iterations_per_call iterations per jitted call (one lax.scan), as the recipes train; torch: one.
    """

    def __init__(self, tcfg: TrainConfig, device: str = "cpu"):
        from jax_tx.ppo.trainer import Trainer
        from torch_ref.ppo_loop import TorchPPO

        self.steps_per_iteration = tcfg.steps_per_iteration
        self.iterations_per_call = tcfg.iterations_per_call
        trainer = Trainer(tcfg)
        self.state = trainer.init()
        start = time.perf_counter()
        self.state, metrics = trainer.run(self.state)
        jax.block_until_ready(metrics)
        self.compile_s = {"jax": time.perf_counter() - start}
        self.loop = TorchPPO(tcfg, device=device)

        def jax_iterations():
            self.state, metrics = trainer.run(self.state)
            jax.block_until_ready(metrics)

        def torch_iteration():
            self.loop.iteration()
            _sync(device)

        self.timers = {"jax": timed(jax_iterations, tcfg.iterations_per_call), "torch_loop": timed(torch_iteration)}
