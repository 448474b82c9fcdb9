"""Policy weight files for `jax-tx convert`: formats, readers, writers, atomic replacement.

    fmt = detect_format(path)                 # torch | safetensors | orbax | msgpack
    loaded = read(path, fmt)                  # Loaded(fmt, weights, cfg or None)
    write(fmt, tmp, flax_variables, cfg)      # then commit(tmp, dst, force)

    .pt / .pth      torch.save({"config": cfg.to_dict(), "state_dict": ...}) (a bare state dict reads with cfg None)
    .safetensors    torch tensors; the config JSON in the metadata under "jax_tx_config"
    DIR (no suffix) orbax checkpoint directory exactly as jax_tx.io.checkpoint.save writes it (step 0)
    .msgpack        flax.serialization of {"params": ...}; the config JSON beside it in <stem>.config.json
    metta           Metta's own checkpoints (.pt pickle, .mpt zip, directory with policy_spec.json), read and
                    written by jax_tx.io.metta; recognised by content, DST with --to metta

Files are written under a hidden temporary sibling name and renamed into place, so DST is
either complete or absent; `sweep_stale` removes temporaries of a killed conversion.
Every failure is a ConvertError with one line naming the problem and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jax_tx.config import ConfigError, PolicyConfig

FORMATS = {".pt": "torch", ".pth": "torch", ".safetensors": "safetensors", ".msgpack": "msgpack", "": "orbax"}
FORMATS.update({".mpt": "metta", ".zip": "metta"})
FLAX_FORMATS = ("orbax", "msgpack")
META_KEY = "jax_tx_config"
TMP_TAG = ".jax-tx-tmp-"
OLD_TAG = ".jax-tx-old-"


class ConvertError(Exception):
    """A conversion problem: one line naming it and the fix; exit code 2."""


@dataclass
class Loaded:
    """Weights as read: a torch state dict or flax variables, plus the stored config (if any)."""

    fmt: str
    weights: dict
    cfg: PolicyConfig | None
    extra: dict | None = None
    """Items stored beside the params (the `metta` residuals of a Metta import; see jax_tx.io.metta)."""
    extra_json: dict | None = None
    notes: tuple[str, ...] = ()


def detect_format(path: Path, source: bool = True) -> str:
    """'torch' | 'safetensors' | 'orbax' | 'msgpack' from the suffix; an existing SRC directory is orbax.

    A SRC holding a Metta checkpoint (by content: jax_tx.io.metta.is_metta_source) is 'metta'."""
    if source and path.exists():
        from jax_tx.io.metta.readers import is_metta_source

        if is_metta_source(path):
            return "metta"
    suffix = "" if source and path.is_dir() else path.suffix.lower()
    if suffix not in FORMATS:
        raise ConvertError(
            f"unknown format {suffix!r} for {path}: use .pt/.pth, .safetensors, .msgpack, or a directory path "
            f"without suffix (orbax); Metta's checkpoints: .pt, .mpt, .zip or a directory (--to metta for DST)"
        )
    return FORMATS[suffix]


def sidecar(path: Path) -> Path:
    """policy.msgpack -> policy.config.json (the config written beside a .msgpack)."""
    return path.with_name(path.stem + ".config.json")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}"


# ----------------------------------------------------------------------------- reading


def config_from(raw: Any, where: str) -> PolicyConfig:
    try:
        return PolicyConfig.from_dict(json.loads(raw) if isinstance(raw, str) else raw)
    except (ConfigError, TypeError, ValueError) as e:
        raise ConvertError(f"{where}: {e}") from e


def _read_torch(path: Path) -> Loaded:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConvertError(
            f"cannot read {path} as a torch.save file ({_first_line(e)}): the file is truncated or not a "
            f"PyTorch checkpoint; re-export it with torch.save"
        ) from e
    if isinstance(obj, dict) and "state_dict" in obj:
        cfg = config_from(obj["config"], f"config stored in {path}") if obj.get("config") is not None else None
        obj = obj["state_dict"]
    else:
        cfg = None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConvertError(
            f"{path} holds a {type(obj).__name__}, not a state dict of tensors nor "
            f"{{'config': ..., 'state_dict': ...}}; save model.state_dict()"
        )
    return Loaded("torch", dict(obj), cfg)


def _read_safetensors(path: Path) -> Loaded:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise ConvertError(
            f"cannot read {path} as safetensors ({_first_line(e)}): the file is truncated or not a safetensors file"
        ) from e
    cfg = config_from(meta[META_KEY], f"config in the metadata of {path}") if META_KEY in meta else None
    return Loaded("safetensors", weights, cfg)


def _read_msgpack(path: Path, config_path: Path) -> Loaded:
    from flax import serialization

    try:
        tree = serialization.msgpack_restore(path.read_bytes())
    except Exception as e:
        raise ConvertError(
            f"cannot read {path} as flax msgpack ({_first_line(e)}): the file is truncated or not "
            f"flax.serialization output"
        ) from e
    if not isinstance(tree, dict) or not isinstance(tree.get("params"), dict):
        raise ConvertError(f"{path} does not hold flax variables {{'params': ...}}; serialize model.init's output")
    cfg = config_from(config_path.read_text(), str(config_path)) if config_path.exists() else None
    return Loaded("msgpack", tree, cfg)


def _read_orbax(path: Path, step: int | None) -> Loaded:
    from jax_tx.io import checkpoint

    try:
        with jax.enable_x64(True):  # float64 params stay float64 (check_dtypes decides what to do with them)
            r = checkpoint.restore(path, step)
    except checkpoint.CheckpointError as e:
        raise ConvertError(str(e)) from e
    except Exception as e:
        raise ConvertError(f"cannot read the orbax checkpoint {path} ({_first_line(e)}); it is damaged") from e
    from jax_tx.io.metta.importer import EXTRA, EXTRA_JSON

    extra = {k: v for k, v in r.extra.items() if k == EXTRA} or None
    return Loaded("orbax", r.params, r.cfg, extra, {k: v for k, v in r.extra_json.items() if k == EXTRA_JSON} or None)


def _read_metta(path: Path) -> Loaded:
    from jax_tx.io.metta.errors import MettaError
    from jax_tx.io.metta.importer import import_metta

    try:
        imp = import_metta(path)
    except MettaError as e:
        raise ConvertError(str(e)) from e
    return Loaded("metta", imp.state_dict, imp.cfg, imp.extra or None, imp.extra_json, tuple(imp.notes))


def read(path: Path, fmt: str, step: int | None = None, config_path: Path | None = None) -> Loaded:
    """Read weights and the stored config from `path` in format `fmt`."""
    if not path.exists():
        raise ConvertError(f"{path} does not exist; check the SRC path")
    if fmt == "orbax":
        return _read_orbax(path, step)
    if fmt == "metta":
        return _read_metta(path)
    if path.is_dir():
        raise ConvertError(f"{path} is a directory but its suffix says {fmt}; pass the file")
    if fmt == "torch":
        return _read_torch(path)
    if fmt == "safetensors":
        return _read_safetensors(path)
    return _read_msgpack(path, config_path or sidecar(path))


# ----------------------------------------------------------------------------- writing


def write(
    fmt: str, path: Path, tree: dict, cfg: PolicyConfig, config_path: Path | None = None, loaded: Loaded | None = None
) -> tuple[str, ...]:
    """Write flax variables `tree` (already in the stored dtype) to `path` in format `fmt`; returns notes.

    A .msgpack's config goes to `config_path` (the caller renames it to `sidecar(final path)`).
    `loaded` (the source) carries the Metta residuals into an orbax DST and out to a Metta DST.
    """
    extra, extra_json = (loaded.extra, loaded.extra_json) if loaded is not None else (None, None)
    if fmt == "orbax":
        from jax_tx.io import checkpoint

        checkpoint.save(path, 0, tree, cfg, extra=extra, extra_json=extra_json)
    elif fmt == "metta":
        from jax_tx.io.metta.errors import MettaError
        from jax_tx.io.metta.importer import export_metta

        try:
            return tuple(export_metta(path, convert_to_torch(tree, cfg), cfg, extra, extra_json))
        except MettaError as e:
            raise ConvertError(str(e)) from e
    elif fmt == "msgpack":
        from flax import serialization

        path.write_bytes(serialization.msgpack_serialize(jax.tree.map(np.asarray, tree)))
        config_path.write_text(cfg.to_json())
    else:
        import torch

        dtype = getattr(torch, str(np.dtype(next(iter(jax.tree.leaves(tree))).dtype)))
        state = {k: v.contiguous() for k, v in convert_to_torch(tree, cfg, dtype).items()}
        if fmt == "torch":
            torch.save({"config": cfg.to_dict(), "state_dict": state}, path)
        else:
            from safetensors.torch import save_file

            save_file(state, str(path), metadata={META_KEY: cfg.to_json()})
            path.chmod(_default_file_mode())  # safetensors creates files 0600; match torch.save and the umask
    return ()


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def convert_to_torch(tree: dict, cfg: PolicyConfig, dtype=None) -> dict:
    from jax_tx.io import convert

    return convert.flax_to_torch(tree, cfg, dtype=dtype)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_sibling(dst: Path, tag: str = TMP_TAG) -> Path:
    """A hidden name in DST's directory (same filesystem, so the final rename is atomic)."""
    return dst.with_name(f".{dst.name}{tag}{os.getpid()}")


def sweep_stale(dst: Path) -> None:
    """Remove temporaries that a killed conversion into `dst` left behind (their process is gone)."""
    if not dst.parent.is_dir():
        return
    for entry in dst.parent.iterdir():
        for tag in (TMP_TAG, OLD_TAG):
            prefix = f".{dst.name}{tag}"
            pid = entry.name[len(prefix) :]
            if entry.name.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
                if tag == OLD_TAG and not dst.exists():
                    os.replace(entry, dst)  # killed between the two renames of a --force replace
                else:
                    remove(entry)


def commit(tmp: Path, dst: Path, force: bool) -> None:
    """Rename the finished `tmp` to `dst`; replacing an existing dst needs `force`."""
    exists = dst.exists() or dst.is_symlink()
    if exists and not force:
        raise ConvertError(f"{dst} exists; pass --force to replace it, or choose another DST")
    if not exists or (tmp.is_file() and dst.is_file()):
        os.replace(tmp, dst)
        return
    old = temp_sibling(dst, OLD_TAG)
    os.replace(dst, old)
    os.replace(tmp, dst)
    remove(old)


def sweep_dir(directory: Path) -> None:
    """sweep_stale for every DST in `directory` that a killed conversion left temporaries of."""
    if not directory.is_dir():
        return
    names = set()
    for entry in directory.iterdir():
        for tag in (TMP_TAG, OLD_TAG):
            head, sep, pid = entry.name.partition(tag)
            if sep and head.startswith(".") and len(head) > 1 and pid.isdigit():
                names.add(head[1:])
    for name in sorted(names):
        sweep_stale(directory / name)
