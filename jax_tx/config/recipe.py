"""Training recipes (JSON) read with one-line errors naming the file and the field (no jax).

    {"variant": "gtrxl", "size": "default", "env": "tmaze", "env_kwargs": {...},
     "policy": {PolicyConfig fields}, "ppo": {PPOConfig fields}, ...TrainConfig fields...}

`load_recipe(path)` checks the file, the top-level keys and the type of every value before any
config is built, so a typo or a "64" where 64 belongs is a ConfigError, not a traceback.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jax_tx.config.policy import ConfigError, PolicyConfig
from jax_tx.config.train import PPOConfig, TrainConfig

RECIPE_KEYS = ("variant", "size", "env", "env_kwargs", "policy", "ppo")
"""Top-level recipe keys besides the TrainConfig loop fields."""
POLICY_FIXED = ("variant", "obs_dim", "num_actions")
TRAIN_NESTED = ("policy", "ppo", "env", "env_kwargs")


def field_kind(f: dataclasses.Field) -> type | None:
    """The JSON type a field takes, read from its default (bool, int, float, str); None: not checked."""
    if f.default is dataclasses.MISSING:
        return None
    for kind in (bool, int, float, str):
        if isinstance(f.default, kind):
            return kind
    return None


def type_ok(kind: type, value: Any) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_fields(cls: type, values: dict[str, Any], where: str, skip: tuple[str, ...] = ()) -> None:
    """ConfigError unless every key of `values` is a field of `cls` (not in `skip`) with a value of its type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a JSON object of {cls.__name__} fields, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known {cls.__name__} fields: {sorted(known)}")
    for name, value in values.items():
        kind = field_kind(known[name])
        if kind is not None and not type_ok(kind, value):
            raise ConfigError(
                f"{where}: field {name}={value!r} must be a {kind.__name__} (JSON {json.dumps(value)} given)"
            )


def check_recipe(recipe: Any, where: str) -> dict[str, Any]:
    """The recipe dict, its keys and value types checked (see the module docstring)."""
    if not isinstance(recipe, dict):
        raise ConfigError(f"{where} must hold a JSON object (a recipe), got a JSON {type(recipe).__name__}")
    loop = {f.name for f in dataclasses.fields(TrainConfig)} - set(TRAIN_NESTED)
    unknown = sorted(set(recipe) - set(RECIPE_KEYS) - loop)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; a recipe holds {list(RECIPE_KEYS)} and the run fields {sorted(loop)}"
        )
    for key in ("variant", "size", "env"):
        if key in recipe and not (isinstance(recipe[key], str) and recipe[key]):
            raise ConfigError(f"{where}: {key!r} must be a non-empty string, got {recipe[key]!r}")
    if not isinstance(recipe.get("env_kwargs", {}), dict):
        raise ConfigError(f"{where}: 'env_kwargs' must be a JSON object, got {recipe['env_kwargs']!r}")
    check_fields(PolicyConfig, recipe.get("policy", {}), f"{where}: 'policy'", POLICY_FIXED)
    check_fields(PPOConfig, recipe.get("ppo", {}), f"{where}: 'ppo'")
    check_fields(TrainConfig, {k: v for k, v in recipe.items() if k in loop}, where, TRAIN_NESTED)
    return recipe


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read and check a recipe JSON file; ConfigError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"--recipe {path} {what}; pass a recipe JSON file (see experiments/recipes/)")
    try:
        recipe = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--recipe {path} cannot be read: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--recipe {path} is not valid JSON: {e}") from None
    return check_recipe(recipe, f"--recipe {path}")
