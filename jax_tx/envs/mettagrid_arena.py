"""A small mettagrid arena where reward is reachable: mines, generators and altars, as in Metta's arena economy.

mettagrid 0.26.22's `make_arena` has walls only (reward is always 0). This builds a `MettaGridConfig` with
Metta's resource chain, each station used by walking into it (the move action's on-use handler):

    mine:       -> ore + 1
    generator:  ore - 1 -> battery + 1             (needs ore >= 1)
    altar:      battery - 1 -> heart + 1           (needs battery >= 1)
    reward_t    = phi_t - phi_{t-1},  phi = heart + min(0.1 ore, 0.1) + min(0.8 battery, 0.8)   (shaped=True)
                                         phi = heart                                       (shaped=False)

The shaped rewards are those of Metta's shaped arena recipes (ore 0.1, battery 0.8, heart 1, each capped), here
as a potential: an episode's return is hearts made + 0.1 [ore held at the end] + 0.8 [battery held at the end], so
a return >= 1 means at least one heart (the success threshold). Inventories cap at inventory_limit per resource.

Actions: noop, move_north, move_south, move_west, move_east (5; vibes and attack off). Observations are the
raw tokens uint8 [num_agents, num_tokens, 3] over an obs_window x obs_window egocentric window. An episode lasts
max_steps steps and ends as a truncation (a time limit, so PPO bootstraps it). Needs mettagrid (own venv:
`make install-mettagrid`).
"""

from __future__ import annotations

from typing import Any

RESOURCES = ("ore", "battery", "heart")
"""Resource names, in mettagrid's inventory-feature order."""

STATIONS = {
    "mine": ({}, {"ore": 1}),
    "generator": ({"ore": 1}, {"battery": 1}),
    "altar": ({"battery": 1}, {"heart": 1}),
}
"""name -> (resources needed and consumed, resources given) per use."""

SHAPED_REWARDS = {"ore": 0.1, "battery": 0.8}
"""Reward weight of holding one ore / battery (capped at one unit's worth); a heart is worth 1, uncapped."""


def import_mettagrid():
    """Import mettagrid or explain how to install it (its gymnasium pin conflicts with gymnax's)."""
    try:
        import mettagrid  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "the mettagrid env needs mettagrid==0.26.22, which conflicts with gymnax (gymnasium 1.4 vs <1.4); "
            "build its own venv with `make install-mettagrid` and run with .venv-mettagrid/bin/python"
        ) from err


def station(name: str, need: dict[str, int], give: dict[str, int]) -> Any:
    """A grid object that, when an agent walks into it holding `need`, takes `need` and gives `give`."""
    from mettagrid.config.handler_config import Handler, actorHas, updateActor
    from mettagrid.config.mettagrid_config import GridObjectConfig

    deltas = {k: -v for k, v in need.items()}
    for k, v in give.items():
        deltas[k] = deltas.get(k, 0) + v
    filters = [actorHas(need)] if need else []
    return GridObjectConfig(name=name, on_use_handler=Handler(filters=filters, mutations=[updateActor(deltas)]))


def arena_config(
    num_agents: int = 4,
    size: int = 11,
    mines: int = 3,
    generators: int = 3,
    altars: int = 3,
    walls: int = 4,
    max_steps: int = 200,
    obs_window: int = 11,
    num_tokens: int = 64,
    inventory_limit: int = 10,
    shaped: bool = True,
) -> Any:
    """The arena as a mettagrid MettaGridConfig: a size x size room (plus a 1-cell wall border), objects at random."""
    import_mettagrid()
    import mettagrid.mapgen.scenes.random as random_scene
    from mettagrid.builder import building
    from mettagrid.config.game_value import InventoryValue
    from mettagrid.config.mettagrid_config import (
        ActionsConfig,
        AgentConfig,
        ChangeVibeActionConfig,
        GameConfig,
        InventoryConfig,
        MettaGridConfig,
        MoveActionConfig,
        NoopActionConfig,
    )
    from mettagrid.config.obs_config import ObsConfig
    from mettagrid.config.reward_config import reward
    from mettagrid.mapgen.mapgen import MapGen

    counts = {"mine": mines, "generator": generators, "altar": altars, "wall": walls}
    free = size * size - num_agents - sum(counts.values())
    if min(num_agents, mines, generators, altars) < 1 or walls < 0 or free < 0:
        raise ValueError(
            f"arena needs >= 1 agent, mine, generator and altar and room for them: num_agents={num_agents}, "
            f"{counts} in a {size}x{size} room; lower the counts or raise size"
        )
    rewards = {"heart": reward(InventoryValue(item="heart"))}
    if shaped:
        for item, w in SHAPED_REWARDS.items():
            rewards[item] = reward(InventoryValue(item=item), weight=w, max=w)
    objects = {"wall": building.wall, **{name: station(name, *STATIONS[name]) for name in STATIONS}}
    game = GameConfig(
        num_agents=num_agents,
        max_steps=max_steps,
        episode_truncates=True,
        resource_names=list(RESOURCES),
        obs=ObsConfig(width=obs_window, height=obs_window, num_tokens=num_tokens),
        actions=ActionsConfig(
            noop=NoopActionConfig(), move=MoveActionConfig(), change_vibe=ChangeVibeActionConfig(enabled=False)
        ),
        objects=objects,
        agent=AgentConfig(
            inventory=InventoryConfig(default_limit=inventory_limit),
            rewards=rewards,
        ),
        map_builder=MapGen.Config(
            num_agents=num_agents,
            width=size,
            height=size,
            border_width=1,
            instance_border_width=0,
            instance=random_scene.Random.Config(agents=num_agents, objects=counts),
        ),
    )
    return MettaGridConfig(label="jax_tx.arena", game=game)
