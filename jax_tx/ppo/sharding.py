"""Data-parallel training on a device mesh: one mesh axis, `NamedSharding`, `jax.jit`, `jax.distributed`.

    placement = Placement.for_config(tcfg)         # a 1-D mesh over tcfg.devices devices (0: all of them)
    shardings = state_shardings(placement, jax.eval_shape(init))   # TrainState of NamedShardings

What lives where (D devices on the mesh axis "data"):

    params, optimizer state   replicated P()           (param_sharding="fsdp": each leaf split on one axis)
    rollout carry             P("data") on axis 0      env state, observation, reset, memory, prev action/reward
    key, iteration            replicated
    a minibatch [H, M, ...]   P(None, "data")          memory and tail [M, ...]: P("data")

The iteration is one `jax.jit` with these in/out shardings; the compiler partitions it (GSPMD): every
env and policy step runs on the device that holds the env, and the minibatch gradient, a mean over
[H, M], becomes per-device partial sums plus an all-reduce. Nothing here writes a collective by hand.

Float results across device counts: the same run (global batch, seed) on 1 or D devices draws the same
random numbers (threefry is partition-invariant) and samples the same actions, so the env trajectories
before the first update are bit-identical (logp and value to ~1e-7: XLA picks its dot kernels by the
per-device batch). Reductions over the batch are summed in another order on D devices: the loss and
gradient means over each minibatch's H x M steps, the advantage normalisation's mean and std
(loss.normalize, over the minibatch), the gradient global norm, and the logged metrics. They differ
in the last bits; after 3 iterations of tests/test_sharding.py the parameters agree to 6e-8 max-abs
(asserted <= 1e-5, the float32 parity bound). Training amplifies such last-bit differences (Adam
divides by sqrt(v), so noise in small gradients becomes a full step): in experiments/bench_devices.py's
config 1 and 2 devices differ by 1.7e-6 after one iteration, 9.1e-6 after three, exactly as much as
recompiling the 1-device run with LLVM -O0 does; a sampled action or a PPO clip branch eventually
flips and the runs part like two runs that differ only in float noise.

The minibatch shuffle is one global permutation (the same on every device count), so each gathered
minibatch moves segments between devices; that is what makes D devices equal to one.

Several processes (hosts): `initialize_distributed` wraps `jax.distributed.initialize`; afterwards
`jax.devices()` lists every process's devices and the same mesh spans them all. Every process runs
the same program on its own envs (its shards of the carry).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXIS = "data"
DISTRIBUTED_ENV = {
    "coordinator_address": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
}
"""The environment variables read by `distributed_settings` (flags take precedence)."""


def resolve_device_count(requested: int) -> int:
    """0 -> every visible device (of every process); otherwise `requested`, checked against what is visible."""
    available = jax.device_count()
    n = available if requested == 0 else requested
    if n > available:
        raise ValueError(
            f"devices={requested} but only {available} {jax.default_backend()} device(s) are visible; "
            f"pass --devices {available} or fewer (0 = all)"
        )
    if jax.process_count() > 1 and n != available:
        raise ValueError(
            f"devices={requested} in a run of {jax.process_count()} processes: multi-process runs use every "
            f"device of every process; pass --devices 0 (or {available})"
        )
    return n


def check_divisible(num_envs: int, minibatch_segments: int, num_devices: int) -> None:
    """Every device holds num_envs / D envs and minibatch_segments / D segments of each minibatch."""
    if num_envs % num_devices:
        raise ValueError(
            f"num_envs={num_envs} is not divisible by the {num_devices} devices; choose num_envs a multiple of "
            f"{num_devices} or --devices dividing {num_envs}"
        )
    if minibatch_segments % num_devices:
        raise ValueError(
            f"a minibatch of {minibatch_segments} segments (num_envs * rollout_steps / bptt_horizon / "
            f"num_minibatches) does not split over {num_devices} devices; lower num_minibatches or --devices"
        )


def make_mesh(num_devices: int) -> Mesh:
    """A 1-D mesh ("data",) over the first num_devices devices (jax.devices() order, all processes)."""
    return jax.make_mesh((num_devices,), (AXIS,), axis_types=(AxisType.Auto,), devices=jax.devices()[:num_devices])


def fsdp_spec(shape: tuple[int, ...], num_devices: int) -> PartitionSpec:
    """Split the largest axis divisible by D (the last one on ties) over the mesh; P() if none is."""
    axes = [i for i, s in enumerate(shape) if s >= num_devices and s % num_devices == 0]
    if num_devices == 1 or not axes:
        return PartitionSpec()
    axis = max(axes, key=lambda i: (shape[i], i))
    return PartitionSpec(*[AXIS if i == axis else None for i in range(len(shape))])


@dataclasses.dataclass(frozen=True)
class Placement:
    """The mesh and the sharding of each kind of array (see the module docstring)."""

    mesh: Mesh
    param_sharding: str = "replicated"

    @classmethod
    def for_config(cls, tcfg) -> Placement:
        n = resolve_device_count(tcfg.devices)
        check_divisible(tcfg.num_envs, tcfg.num_segments // tcfg.ppo.num_minibatches, n)
        return cls(make_mesh(n), tcfg.param_sharding)

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def batch(self, axis: int = 0) -> NamedSharding:
        """Split array axis `axis` over the mesh (the env / segment axis)."""
        return NamedSharding(self.mesh, PartitionSpec(*([None] * axis), AXIS))

    def param(self, shape: tuple[int, ...]) -> NamedSharding:
        """A parameter or optimizer-state leaf: replicated, or fsdp_spec when param_sharding="fsdp"."""
        if self.param_sharding == "fsdp":
            return NamedSharding(self.mesh, fsdp_spec(tuple(shape), self.num_devices))
        return self.replicated

    def constrain(self, x, axis: int):
        return jax.lax.with_sharding_constraint(x, self.batch(axis))

    def shard_minibatch(self, mb):
        """Segments [H, M, ...] (memory, tail: [M, ...]) -> the same, split over M on the mesh."""
        time_major = {
            k: self.constrain(getattr(mb, k), 1) for k in mb.__dataclass_fields__ if k not in ("memory", "tail")
        }
        memory = jax.tree_util.tree_map(lambda x: self.constrain(x, 0), mb.memory)
        return mb.replace(memory=memory, tail=self.constrain(mb.tail, 0), **time_major)


def state_shardings(placement: Placement, state):
    """A TrainState (of arrays or ShapeDtypeStructs) -> the same TrainState of NamedShardings."""
    param = lambda x: placement.param(x.shape)  # noqa: E731
    return state.replace(
        params=jax.tree_util.tree_map(param, state.params),
        opt_state=jax.tree_util.tree_map(param, state.opt_state),
        carry=jax.tree_util.tree_map(lambda _: placement.batch(0), state.carry),
        key=placement.replicated,
        iteration=placement.replicated,
    )


def place(tree, shardings):
    """Host-identical arrays (every process computed the same values) -> global arrays with `shardings`."""

    def put(x, s):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

    return jax.tree_util.tree_map(put, tree, shardings)


def bytes_per_device(tree) -> dict[str, int]:
    """Bytes of `tree`'s arrays held by each addressable device (shards summed)."""
    out: dict[str, int] = {}
    for leaf in jax.tree_util.tree_leaves(tree):
        for shard in leaf.addressable_shards:
            out[str(shard.device)] = out.get(str(shard.device), 0) + shard.data.nbytes
    return out


def to_host(tree, placement: Placement):
    """Arrays on the mesh -> numpy copies (gathered to every device first), usable by any process alone."""
    gathered = jax.jit(lambda t: t, out_shardings=placement.replicated)(tree)
    return jax.tree_util.tree_map(np.asarray, gathered)


def is_primary() -> bool:
    """Process 0 writes the run's logs; every process takes part in checkpoints (orbax)."""
    return jax.process_index() == 0


def distributed_settings(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any] | None:
    """Flags, else JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID; None: a single process."""
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
    out: dict[str, Any] = {}
    for name, value in given.items():
        raw = value if value is not None else environ.get(DISTRIBUTED_ENV[name]) or None
        if raw is not None and name != "coordinator_address":
            try:
                raw = int(raw)
            except ValueError:
                raise ValueError(f"{DISTRIBUTED_ENV[name]}={raw!r} is not an integer; set it to an int") from None
        out[name] = raw
    if all(v is None for v in out.values()):
        return None
    if out["num_processes"] is not None and out["process_id"] is not None:
        if not 0 <= out["process_id"] < out["num_processes"]:
            raise ValueError(
                f"process_id={out['process_id']} is outside [0, num_processes={out['num_processes']}); "
                f"number the processes 0 .. {out['num_processes'] - 1}"
            )
    return out


def initialize_distributed(settings: Mapping[str, Any] | None) -> bool:
    """jax.distributed.initialize(**settings) before any other jax call; False (nothing done) for None."""
    if settings is None:
        return False
    try:
        jax.distributed.initialize(**settings)
    except (RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ValueError(
            f"jax.distributed.initialize({', '.join(f'{k}={v!r}' for k, v in settings.items())}) failed: {first}; "
            f"check that every process gets the same coordinator address and process count and its own process id"
        ) from e
    return True
