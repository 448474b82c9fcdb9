"""Metta's three on-disk checkpoint formats, read without Metta or its dependencies.

    src = read_metta(path)      # MettaSource(fmt, state_dict, arch, arch_text, spec_text, root_class)

    .pt   (until 2025-10)   torch.save(policy): the whole pickled object, read by the restricted unpickler
    .mpt  (2025-10..2026-01) zip: weights.safetensors + modelarchitecture.txt (call-syntax string)
    DIR   (since 2026-01)   weights.safetensors + policy_spec.json (init_kwargs.architecture_spec = that string)
    .zip  (since 2026-01)   that directory zipped (remote copies; trainer_state.pt inside is ignored)

`is_metta_source(path)` tells a Metta checkpoint from jax_tx's own formats by content, never by
loading it (a .pt whose pickle names classes instead of a dict of tensors; a directory with
policy_spec.json; any .mpt).
"""

from __future__ import annotations

import json
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jax_tx.io.metta.arch import parse_architecture
from jax_tx.io.metta.errors import MettaError
from jax_tx.io.metta.unpickle import read_pickled_state_dict

WEIGHTS = "weights.safetensors"
ARCH_TXT = "modelarchitecture.txt"
SPEC_JSON = "policy_spec.json"
CHECKPOINT_POLICY = "metta.agent.policy.CheckpointPolicy"


@dataclass
class MettaSource:
    """What a Metta checkpoint holds: its state dict (torch tensors, Metta's keys) and its architecture."""

    fmt: str  # "pt" | "mpt" | "dir"
    path: Path
    state_dict: dict
    arch: dict | None  # parse_architecture output
    arch_text: str | None
    spec_text: str | None  # policy_spec.json verbatim (dir)
    root_class: str | None  # class path of the pickled root module (pt)


def _load_safetensors(raw: bytes, where: str) -> dict:
    from safetensors.torch import load

    try:
        return dict(load(raw))
    except Exception as e:
        raise MettaError(f"cannot read {where} as safetensors ({type(e).__name__}: {e}); the file is truncated") from e


def read_mpt(path: Path) -> MettaSource:
    """A .mpt (weights + modelarchitecture.txt) or the .zip of a checkpoint directory (weights + policy_spec.json)."""
    kind = ".zip of a checkpoint directory" if path.suffix.lower() == ".zip" else ".mpt checkpoint"
    try:
        with zipfile.ZipFile(path) as z:
            names = {Path(n).name: n for n in z.namelist()}
            if WEIGHTS not in names:
                raise MettaError(f"{path} has no {WEIGHTS}; it is not a Metta {kind} (or it is incomplete)")
            raw = z.read(names[WEIGHTS])
            arch_text = z.read(names[ARCH_TXT]).decode("utf-8") if ARCH_TXT in names else None
            spec_text = z.read(names[SPEC_JSON]).decode("utf-8") if SPEC_JSON in names else None
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError) as e:
        raise MettaError(f"cannot read {path} as a Metta zip ({e}); the file is truncated or damaged") from e
    if spec_text is not None:
        _, arch_text = read_spec(spec_text, f"{path}:{SPEC_JSON}")
    if arch_text is None:
        raise MettaError(f"{path} has neither {ARCH_TXT} nor {SPEC_JSON}; it is not a Metta {kind}")
    state = _load_safetensors(raw, f"{path}:{WEIGHTS}")
    arch = _policy_arch(arch_text, f"{path}: architecture")
    return MettaSource("mpt", path, state, arch, arch_text, spec_text, None)


def _policy_arch(text: str, where: str) -> dict:
    arch = parse_architecture(text, where)
    if not str(arch.get("class_path", "")).startswith("metta."):
        raise MettaError(
            f"{where}: unknown policy class {arch.get('class_path')!r} (not a metta.* policy architecture); "
            f"jax-tx convert reads Metta's own policies"
        )
    return arch


def read_spec(text: str, where: str) -> tuple[dict, str]:
    """(spec dict, architecture string) of a policy_spec.json."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise MettaError(f"{where} is not JSON ({e.msg} at line {e.lineno}); the file is damaged") from e
    if isinstance(spec, dict) and spec.get("class_path") not in (CHECKPOINT_POLICY, None):
        raise MettaError(
            f"{where} names class_path {spec['class_path']!r}, not {CHECKPOINT_POLICY}; jax-tx convert reads "
            f"Metta's trained-policy checkpoints only"
        )
    arch_text = spec.get("init_kwargs", {}).get("architecture_spec") if isinstance(spec, dict) else None
    if not isinstance(arch_text, str):
        raise MettaError(f"{where} has no init_kwargs.architecture_spec string; it is not a Metta policy spec")
    return spec, arch_text


def read_dir(path: Path) -> MettaSource:
    weights, spec_path = path / WEIGHTS, path / SPEC_JSON
    for f in (spec_path, weights):
        if not f.is_file():
            raise MettaError(f"{path} has no {f.name}; a Metta checkpoint directory holds {WEIGHTS} and {SPEC_JSON}")
    spec_text = spec_path.read_text()
    _, arch_text = read_spec(spec_text, str(spec_path))
    state = _load_safetensors(weights.read_bytes(), str(weights))
    arch = _policy_arch(arch_text, f"{spec_path}: architecture_spec")
    return MettaSource("dir", path, state, arch, arch_text, spec_text, None)


def read_pt(path: Path) -> MettaSource:
    state, root, tree = read_pickled_state_dict(path)
    return MettaSource("pt", path, state, tree, None, None, root)


def read_metta(path: Path) -> MettaSource:
    """Read any of the three formats (by suffix / directory)."""
    path = Path(path)
    if not path.exists():
        raise MettaError(f"{path} does not exist; check the SRC path")
    if path.is_dir():
        return read_dir(path)
    if path.suffix.lower() in (".mpt", ".zip"):
        return read_mpt(path)
    return read_pt(path)


def _pickle_globals(path: Path) -> list[str] | None:
    """Globals named by the data.pkl of a torch.save zip (read with pickletools, nothing executed)."""
    try:
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
            if len(pkl) != 1:
                return None
            raw = z.read(pkl[0])
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    names, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(raw):
            if op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(arg)
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:
        return names
    return names


def _state_dict_global(name: str) -> bool:
    """A global torch.save of a plain state dict uses (rebuild functions, storages, dtypes, OrderedDict)."""
    rebuild = ("torch._utils._rebuild", "torch._tensor._rebuild", "collections.OrderedDict", "torch.nn.parameter.")
    return name.startswith(rebuild) or (name.startswith("torch.") and name.count(".") == 1)


def is_metta_source(path: Path) -> bool:
    """True for a .mpt, a directory with policy_spec.json (or weights.safetensors without orbax steps), or a
    .pt/.pth whose pickle names globals beyond a state dict's (a pickled object: the restricted reader decides)."""
    path = Path(path)
    if path.is_dir():
        return (path / SPEC_JSON).is_file() or (
            (path / WEIGHTS).is_file() and not any(p.name.isdigit() for p in path.iterdir())
        )
    suffix = path.suffix.lower()
    if suffix in (".mpt", ".zip"):
        return True
    if suffix not in (".pt", ".pth") or not path.is_file():
        return False
    return any(not _state_dict_global(n) for n in _pickle_globals(path) or [])


def describe(src: MettaSource) -> str:
    """One line: format and where the architecture came from."""
    kind = {"pt": "pickled policy (torch.save)", "mpt": ".mpt zip", "dir": "checkpoint directory"}[src.fmt]
    top = (src.arch or {}).get("class_path") or src.root_class or "?"
    return f"Metta {kind}, {top}, {len(src.state_dict)} tensors"


def spec_dict(src: MettaSource) -> dict[str, Any] | None:
    return json.loads(src.spec_text) if src.spec_text else None
