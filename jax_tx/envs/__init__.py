"""Environments for jax_tx: JAX-native memory tasks, gymnax and xminigrid adapters and a host (Gymnasium) adapter.

    from jax_tx.envs import make_env
    env = make_env("tmaze", corridor_length=4)
    obs, state = env.reset(key)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action)

The interface (attributes obs_dim, num_actions, max_steps, name; auto-resetting step; info keys) is documented in
`jax_tx.envs.base`. Gymnasium (numpy) vector envs go through `jax_tx.envs.host_adapter.HostVectorEnv` instead.
"""

from __future__ import annotations

from jax_tx.envs.base import INFO_KEYS, Env, EpisodeState
from jax_tx.envs.memory_tasks import CountRecall, RepeatPrevious, TMaze
from jax_tx.envs.slot_task import SlotSelect
from jax_tx.envs.token_tasks import TokenTMaze

NATIVE_ENVS = {
    "tmaze": TMaze,
    "repeat_previous": RepeatPrevious,
    "count_recall": CountRecall,
    "token_tmaze": TokenTMaze,
    "slot_select": SlotSelect,
}
# Native names plus the gymnax / xminigrid envs that are tested; any registered gymnax id works as "gymnax:<id>",
# any xminigrid id as "xminigrid:<id>".
ENV_NAMES = (
    *NATIVE_ENVS,
    "gymnax:CartPole-v1",
    "gymnax:MemoryChain-bsuite",
    "gymnax:Breakout-MinAtar",
    "xminigrid:MiniGrid-MemoryS8",
    "xminigrid:MiniGrid-MemoryS16",
)

__all__ = [
    "ENV_NAMES",
    "INFO_KEYS",
    "Env",
    "EpisodeState",
    "TMaze",
    "RepeatPrevious",
    "CountRecall",
    "TokenTMaze",
    "SlotSelect",
    "make_env",
]


def make_env(name: str, **kwargs) -> Env:
    """Build env `name` with configuration kwargs.

    Native: "tmaze" (corridor_length, max_steps, ...), "repeat_previous" (k, num_symbols, episode_length, ...),
    "count_recall" (num_values, episode_length, max_count, ...), "token_tmaze" (corridor_length, num_tokens: token
    observations uint8[num_tokens, 3] for encoder="tokens"), "slot_select" (num_slots, num_types, memory, ...;
    factored actions (type, slot) with action masks). gymnax: "gymnax:<id>", e.g.
    "gymnax:MemoryChain-bsuite" with memory_length=L; kwargs naming gymnax EnvParams fields go to
    `params.replace`, others to the gymnax constructor, plus success_return (see gymnax_adapter). xminigrid:
    "xminigrid:<id>", e.g. "xminigrid:MiniGrid-MemoryS8"; kwargs are xminigrid EnvParams fields (height, width,
    view_size, max_steps) plus encoding ("tile_onehot" or "ids"; see xminigrid_adapter).
    Raises ValueError for an unknown name or a bad configuration value.
    """
    if name in NATIVE_ENVS:
        cls = NATIVE_ENVS[name]
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise ValueError(f"bad arguments for env {name!r}: {err}; see help(jax_tx.envs.{cls.__name__})") from err
    if name.startswith("gymnax:"):
        from jax_tx.envs.gymnax_adapter import make_gymnax

        return make_gymnax(name.removeprefix("gymnax:"), **kwargs)
    if name.startswith("xminigrid:"):
        from jax_tx.envs.xminigrid_adapter import make_xminigrid

        return make_xminigrid(name.removeprefix("xminigrid:"), **kwargs)
    raise ValueError(
        f"unknown env {name!r}; known: {', '.join(ENV_NAMES)} "
        "(any gymnax id works as 'gymnax:<id>', any xminigrid id as 'xminigrid:<id>')"
    )
