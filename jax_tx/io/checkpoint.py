"""Orbax checkpoints that describe themselves: params + the resolved config (+ training state).

One layout for training runs and for `jax-tx convert`, so a converted checkpoint can be
evaluated or trained on:

    DIR/<step>/params/   flax variables {"params": ...}, original dtypes (StandardSave)
    DIR/<step>/config/   cfg.to_dict() as JSON, with schema_version (JsonSave)
    DIR/<step>/<name>/   each `extra` pytree (e.g. optimizer state) and `extra_json` dict

    save(ckpt_dir, step, variables, cfg, extra={"opt_state": opt_state}, extra_json={"stats": {...}})
    r = restore(ckpt_dir, extra_templates={"opt_state": opt_state})   # latest step
    r.params, r.cfg, r.step, r.extra["opt_state"], r.extra_json["stats"]

Everything goes through `ocp.CheckpointManager` with `args=` (never the legacy API) and
waits for the async write before returning. Orbax writes each step to a temporary
directory and renames it when complete, so a killed run leaves no half-written step.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax.traverse_util import flatten_dict

from jax_tx.config import ConfigError, PolicyConfig

PARAMS_ITEM = "params"
CONFIG_ITEM = "config"
RESERVED_ITEMS = (PARAMS_ITEM, CONFIG_ITEM)
_MANIFEST_KEY = "jax_tx"
DEFAULT_MAX_TO_KEEP = None
"""Keep every step unless the caller passes max_to_keep (orbax's own default)."""


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read; the message names the path and the fix."""


class Restored(NamedTuple):
    """What `restore` returns: flax variables, the stored config, the step, extra items."""

    params: dict
    cfg: PolicyConfig
    step: int
    extra: dict[str, Any]
    extra_json: dict[str, dict]


@functools.lru_cache(maxsize=32)
def _template(cfg: PolicyConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    from jax_tx.io.convert import param_template

    return {path: tuple(s.shape) for path, s in param_template(cfg).items()}


def check_params_match(params: Mapping[str, Any], cfg: PolicyConfig, where: str = "params") -> None:
    """Raise CheckpointError unless `params` ({"params": ...}) has exactly cfg's paths and shapes."""
    if not isinstance(params, Mapping) or PARAMS_ITEM not in params:
        raise CheckpointError(
            f"{where}: expected the flax variables dict {{'params': ...}} that model.init returns, "
            f"got {type(params).__name__} with keys {sorted(params) if isinstance(params, Mapping) else '-'}"
        )
    given = {path: tuple(np.shape(v)) for path, v in flatten_dict(dict(params[PARAMS_ITEM])).items()}
    expected = _template(cfg)
    missing = sorted("/".join(p) for p in set(expected) - set(given))
    extra = sorted("/".join(p) for p in set(given) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{where}: the params do not match the config (variant {cfg.variant!r}): missing {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected {extra[:8]}{' ...' if len(extra) > 8 else ''}; "
            f"pass the config the params were built with"
        )
    for path, shape in sorted(expected.items()):
        if given[path] != shape:
            raise CheckpointError(
                f"{where}: shape mismatch at {'/'.join(path)!r}: the config expects {shape}, the params have "
                f"{given[path]}; pass the config the params were built with"
            )


def _is_single_leaf(tree: Any) -> bool:
    """Orbax's StandardSave refuses a bare array or scalar; such items are stored as {"value": x}."""
    return jax.tree_util.treedef_is_leaf(jax.tree.structure(tree))


def _wrap(tree: Any) -> dict:
    return {"value": tree}


def _check_names(extra: Mapping | None, extra_json: Mapping | None) -> None:
    names = list(extra or ()) + list(extra_json or ())
    bad = sorted({n for n in names if n in RESERVED_ITEMS or not n.isidentifier()})
    dup = sorted(set(extra or ()) & set(extra_json or ()))
    if bad or dup:
        raise CheckpointError(
            f"extra item names {bad or dup} are not allowed: names must be Python identifiers, unique across "
            f"extra and extra_json, and not {RESERVED_ITEMS}"
        )


def save(
    directory: str | os.PathLike,
    step: int,
    params: Mapping[str, Any],
    cfg: PolicyConfig,
    *,
    extra: dict[str, Any] | None = None,
    extra_json: dict[str, dict] | None = None,
    max_to_keep: int | None = DEFAULT_MAX_TO_KEEP,
) -> None:
    """Write `params` ({"params": ...}), `cfg` and extra items as step `step` of `directory`.

    Blocks until the (async) write is complete. `extra` values are pytrees of arrays
    (optimizer state, RNG keys, ...); `extra_json` values are JSON-serialisable dicts.
    `max_to_keep` keeps only the newest steps (None keeps all).
    """
    if not isinstance(cfg, PolicyConfig):
        raise CheckpointError(f"save({directory!s}): cfg must be a PolicyConfig, got {type(cfg).__name__}")
    check_params_match(params, cfg, where=f"save({directory!s})")
    _check_names(extra, extra_json)
    extra, extra_json = dict(extra or {}), dict(extra_json or {})
    path = Path(directory).absolute()
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} exists and is not a directory; choose a directory path for the checkpoint")
    items = {PARAMS_ITEM: ocp.args.StandardSave(params), CONFIG_ITEM: ocp.args.JsonSave(cfg.to_dict())}
    wrapped = sorted(k for k, v in extra.items() if _is_single_leaf(v))
    items.update({k: ocp.args.StandardSave(_wrap(v) if k in wrapped else v) for k, v in extra.items()})
    items.update({k: ocp.args.JsonSave(v) for k, v in extra_json.items()})
    manifest = {_MANIFEST_KEY: {"extra": sorted(extra), "extra_json": sorted(extra_json), "wrapped": wrapped}}
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    with ocp.CheckpointManager(path, options=options, item_names=tuple(items)) as mngr:
        if step in mngr.all_steps():
            raise CheckpointError(f"{path} already holds step {step}; save under a new step or into another directory")
        mngr.save(int(step), args=ocp.args.Composite(**items), custom_metadata=manifest)
        mngr.wait_until_finished()


def _looks_like_step_dir(path: Path) -> bool:
    return (path / PARAMS_ITEM).is_dir() and (path / CONFIG_ITEM).is_dir()


def all_steps(directory: str | os.PathLike) -> list[int]:
    """Completed steps in `directory`, ascending; [] if none (or no such directory)."""
    path = Path(directory).absolute()
    if not path.is_dir():
        return []
    with ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(create=False)) as mngr:
        return sorted(mngr.all_steps())


def latest_step(directory: str | os.PathLike) -> int | None:
    """The newest completed step in `directory`, or None."""
    steps = all_steps(directory)
    return steps[-1] if steps else None


def is_checkpoint_dir(directory: str | os.PathLike) -> bool:
    """True when `directory` holds at least one completed step."""
    return bool(all_steps(directory))


def _resolve_step(path: Path, step: int | None) -> int:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the directory does not exist; check the path")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file, not an orbax checkpoint directory; pass the checkpoint directory")
    steps = all_steps(path)
    if not steps:
        hint = (
            f"it looks like one step of a checkpoint; pass its parent {path.parent}"
            if _looks_like_step_dir(path)
            else "pass the directory that save() or a training run wrote (it holds numbered step directories)"
        )
        raise CheckpointError(f"{path} is not a jax_tx checkpoint (no completed steps): {hint}")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise CheckpointError(f"{path} has no step {step}; available steps: {steps}")
    return int(step)


def _item_names(path: Path, step: int) -> list[str]:
    step_dir = path / str(step)
    return sorted(p.name for p in step_dir.iterdir() if p.is_dir())


def _manifest(path: Path, step: int, names: list[str]) -> tuple[set[str], set[str]]:
    """(JSON item names, items stored wrapped as {"value": x}) from the step's custom metadata."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # orbax warns that it cannot restore items it has no handler for yet
    try:
        with ocp.CheckpointManager(
            path, options=ocp.CheckpointManagerOptions(create=False), item_names=tuple(names)
        ) as mngr:
            step_meta = mngr.metadata(step)
    finally:
        absl_logger.setLevel(level)
    manifest = (step_meta.custom_metadata or {}).get(_MANIFEST_KEY, {})
    if "extra_json" in manifest:
        json_names = set(manifest["extra_json"])
    else:  # written by another tool: ask the handler names orbax recorded
        json_names = {n for n, h in (step_meta.item_handlers or {}).items() if "Json" in str(h)}
    return json_names, set(manifest.get("wrapped", ()))


def _check_x64(item_metadata: Any, path: Path, step: int) -> None:
    """float64 arrays would silently come back as float32 unless jax_enable_x64 is on."""
    if jax.config.jax_enable_x64:
        return
    for name, tree in (item_metadata or {}).items():
        dtypes = {str(getattr(m, "dtype", "")) for m in jax.tree.leaves(tree) if m is not None}
        if "float64" in dtypes:
            raise CheckpointError(
                f"{path} step {step}: item {name!r} holds float64 arrays but jax_enable_x64 is off; restore inside "
                f"`with jax.enable_x64(True):` (or jax.config.update('jax_enable_x64', True))"
            )


def _restore_args(names, json_names, wrapped, templates, params_template=None) -> dict[str, Any]:
    """Orbax restore args; items without a template land on this process's first device, whatever mesh saved them."""
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    params_target = None if params_template is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, params_template)
    args = {
        PARAMS_ITEM: ocp.args.StandardRestore(params_target, fallback_sharding=local),
        CONFIG_ITEM: ocp.args.JsonRestore(),
    }
    for name in names:
        if name in RESERVED_ITEMS:
            continue
        if name in json_names:
            args[name] = ocp.args.JsonRestore()
        elif name in templates:
            template = _wrap(templates[name]) if name in wrapped else templates[name]
            args[name] = ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, template))
        else:
            args[name] = ocp.args.StandardRestore(fallback_sharding=local)
    return args


def _read_config(raw: Any, path: Path, step: int) -> PolicyConfig:
    try:
        return PolicyConfig.from_dict(raw)
    except ConfigError as e:
        raise CheckpointError(f"{path} step {step}: stored config cannot be read: {e}") from e
    except TypeError as e:
        raise CheckpointError(f"{path} step {step}: stored config is not a config dict ({e}); re-save it") from e


def restore(
    directory: str | os.PathLike,
    step: int | None = None,
    *,
    extra_templates: dict[str, Any] | None = None,
    params_template: Any | None = None,
) -> Restored:
    """Read step `step` (None: the latest) of `directory`.

    Params come back as jax arrays with their stored dtypes, checked against the stored
    config. Extra pytree items are restored against `extra_templates` (same structure as
    when saved, e.g. a fresh optimizer state) so NamedTuples and tuples come back as such;
    items without a template come back as nested dicts/lists. JSON items come back as dicts.
    Template leaves that are jax arrays (or ShapeDtypeStructs with a sharding) give the restored
    arrays their sharding: `params_template` (e.g. sharded params) does the same for the params, so a
    checkpoint written on one device count restores onto another mesh.
    """
    path = Path(directory).absolute()
    step = _resolve_step(path, step)
    names = _item_names(path, step)
    if PARAMS_ITEM not in names or CONFIG_ITEM not in names:
        raise CheckpointError(
            f"{path} step {step} lacks the {PARAMS_ITEM!r}/{CONFIG_ITEM!r} items (has {names}); it was not "
            f"written by jax_tx.io.checkpoint.save or jax-tx convert"
        )
    templates = dict(extra_templates or {})
    unknown = sorted(set(templates) - set(names))
    if unknown:
        raise CheckpointError(f"{path} step {step} has no item(s) {unknown}; stored items: {names}")
    json_names, wrapped = _manifest(path, step, names)
    handlers = {n: ocp.JsonCheckpointHandler() if n in json_names else ocp.StandardCheckpointHandler() for n in names}
    handlers[CONFIG_ITEM] = ocp.JsonCheckpointHandler()
    options = ocp.CheckpointManagerOptions(create=False)
    try:
        with ocp.CheckpointManager(path, options=options, item_handlers=handlers) as mngr:
            _check_x64(mngr.item_metadata(step), path, step)
            out = mngr.restore(
                step, args=ocp.args.Composite(**_restore_args(names, json_names, wrapped, templates, params_template))
            )
    except CheckpointError:
        raise
    except Exception as e:  # orbax / tensorstore errors on damaged files or a template of another structure
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise CheckpointError(
            f"{path} step {step} cannot be restored ({type(e).__name__}: {first}); the checkpoint is incomplete or "
            f"damaged, or an extra template does not have the structure that was saved"
        ) from e
    cfg = _read_config(out[CONFIG_ITEM], path, step)
    params = out[PARAMS_ITEM]
    check_params_match(params, cfg, where=f"{path} step {step}")
    extra = {
        n: out[n]["value"] if n in wrapped else out[n] for n in names if n not in RESERVED_ITEMS + tuple(json_names)
    }
    extra_json = {n: out[n] for n in names if n in json_names}
    return Restored(params=params, cfg=cfg, step=step, extra=extra, extra_json=extra_json)
