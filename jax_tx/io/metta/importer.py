"""Metta checkpoint -> (jax_tx config, torch_ref state dict), and back to Metta's current directory format.

    imp = import_metta(path)      # Imported(cfg, state_dict, notes, plan, extra, extra_json)
    export_metta(dst_dir, torch_state_dict, cfg, extra, extra_json)   # weights.safetensors + policy_spec.json

What jax_tx's params cannot hold (Cortex's separate q/k/v biases, gtd_aux, the sliding runtime buffers,
the exact spec text) is kept as the `metta` extra of the orbax checkpoint, with a fingerprint of the
imported weights: while the weights are unchanged, export restores those tensors and the spec byte for
byte (a bit-exact round trip); after training, export writes the canonical inverse map instead (zero
q/k/v biases, gtd_aux copied from the critic) and says so.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jax_tx.config import ConfigError, PolicyConfig, preset
from jax_tx.io.metta import keymaps as K
from jax_tx.io.metta import plans
from jax_tx.io.metta.arch import parse_architecture
from jax_tx.io.metta.errors import MettaError
from jax_tx.io.metta.readers import CHECKPOINT_POLICY, SPEC_JSON, WEIGHTS, MettaSource, read_metta
from jax_tx.io.metta.templates import architecture_for

EXTRA = "metta"
EXTRA_JSON = "metta_json"
FLOAT_KINDS = ("f",)


@dataclass
class Imported:
    cfg: PolicyConfig
    state_dict: dict  # torch_ref keys -> torch tensors (float32; float64 when every source weight is float64)
    notes: list[str]
    plan: plans.P.Plan
    extra: dict = field(default_factory=dict)  # {EXTRA: {"t0": array, ...}}
    extra_json: dict = field(default_factory=dict)  # {EXTRA_JSON: {...}}


def fingerprint(state: dict) -> str:
    """sha256 over the sorted keys, shapes, dtypes and bytes of a torch_ref state dict (numpy values)."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = np.ascontiguousarray(K.as_numpy(state[k]))
        h.update(f"{k}|{v.shape}|{v.dtype}|".encode())
        h.update(v.tobytes())
    return h.hexdigest()


def _check_floats(src: dict, used_as_weights: set[str]) -> None:
    for k in sorted(used_as_weights):
        if src[k].dtype.kind not in FLOAT_KINDS:
            raise MettaError(
                f"tensor {k!r} has dtype {src[k].dtype}; policy weights must be floating point (the file is damaged "
                f"or not a trained policy)"
            )


def _config(plan, fields: dict, num_actions: int) -> PolicyConfig:
    try:
        return preset(plan.name, obs_dim=K.METTA_OBS_TOKENS, num_actions=num_actions, **fields)
    except ConfigError as e:
        raise MettaError(f"the weights give a {plan.name} config jax_tx rejects: {e}") from e


def map_source(src: MettaSource) -> Imported:
    state, prefix = K.normalize_keys(src.state_dict)
    numpy_src = {k: K.as_numpy(v) for k, v in state.items()}
    plan = plans.detect(numpy_src)
    km = K.KeyMap(numpy_src)
    arch = src.arch
    with _layout_errors(plan.name):
        fields = plan.read(km, arch)
    left = km.leftover()
    if left:
        raise MettaError(
            f"the checkpoint has {len(left)} key(s) the {plan.name} map does not know ({left[:4]} ...); keys of an "
            f"unsupported model variant"
        )
    _check_floats(numpy_src, km.used - set(km.dropped) - km.config_keys)
    heads = fields.pop("token_num_heads", None) or plans.P.int_field(
        arch, ("num_heads", "n_heads"), "perceiver", 4, "Perceiver num_heads", km
    )
    weight_keys = km.used - km.config_keys - set(km.dropped)
    wide = all(numpy_src[k].dtype == np.float64 for k in weight_keys if numpy_src[k].dtype.kind == "f")
    fields = dict(fields, token_num_heads=heads, dtype="float64" if wide else "float32")
    cfg = _config(plan, fields, int(km.out["actor_out.weight"].shape[0]))
    if src.arch_text is not None:  # a pickle's attributes are the model itself, not a spec to contradict it
        plans.check_arch(arch, cfg)
    weights = {k: np.asarray(v, np.float64 if wide else np.float32) for k, v in km.out.items()}
    with _layout_errors(plan.name):
        back = K.denormalize_keys(plan.write(weights, cfg), prefix)
    residual = {k: v for k, v in src.state_dict.items() if not _same(back.get(k), K.as_numpy(v))}
    order = list(src.state_dict)
    extra = {EXTRA: {f"t{i}": K.as_numpy(residual[k]) for i, k in enumerate(order) if k in residual}}
    meta = dict(
        plan=plan.name,
        source_format=src.fmt,
        keys=order,
        residual={k: f"t{i}" for i, k in enumerate(order) if k in residual},
        fingerprint=fingerprint(weights),
        arch_text=src.arch_text,
        spec_text=src.spec_text,
        prefix=prefix,
    )
    notes = list(km.notes)
    reasons = Counter(km.dropped.values())
    if reasons:
        notes.append("dropped " + "; ".join(f"{n} x {why}" if n > 1 else why for why, n in sorted(reasons.items())))
    notes.append(f"{plan.name}: {plan.caveat}")
    import torch

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    return Imported(cfg, tensors, notes, plan, extra if residual else {}, {EXTRA_JSON: meta})


@contextmanager
def _layout_errors(name: str):
    """A tensor missing or misshapen for the map becomes one MettaError line."""
    try:
        yield
    except MettaError:
        raise
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise MettaError(
            f"the checkpoint does not have the {name} layout ({type(e).__name__}: {str(e)[:120]}); it is incomplete "
            f"or another model"
        ) from e


def _same(a, b) -> bool:
    return a is not None and a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def import_metta(path: Path) -> Imported:
    """Read and map a Metta .pt / .mpt / checkpoint directory."""
    return map_source(read_metta(Path(path)))


# ----------------------------------------------------------------------------- export


def metta_state_dict(
    tsd: dict, cfg: PolicyConfig, extra: dict | None, extra_json: dict | None
) -> tuple[dict, str, list]:
    """(Metta state dict in the source's key order, architecture string, notes) for torch_ref weights."""
    weights = {k: np.asarray(K.as_numpy(v)) for k, v in tsd.items()}
    meta = (extra_json or {}).get(EXTRA_JSON)
    plan = plans.PLANS.get(meta["plan"]) if meta else _plan_for(cfg)
    canonical = plan.write(weights, cfg)
    notes: list[str] = []
    if meta and meta["fingerprint"] == fingerprint(weights):
        residual = (extra or {}).get(EXTRA, {})
        out = K.denormalize_keys(canonical, meta["prefix"])
        for key, tag in meta["residual"].items():
            out[key] = np.asarray(residual[tag])
        out = {k: out[k] for k in meta["keys"]}
        arch_text = meta["arch_text"] or architecture_for(cfg, plan.name)
        return out, arch_text, notes
    if meta:
        notes.append(
            "the weights changed since the Metta import: the tensors jax_tx does not hold are re-derived (zero q/k/v "
            "biases, gtd_aux copied from the critic, runtime buffers omitted)"
        )
    canonical = {k: v for k, v in canonical.items() if not k.endswith(plans.RUNTIME_BUFFERS)}
    return canonical, architecture_for(cfg, plan.name), notes


def _plan_for(cfg: PolicyConfig):
    for name in ("metta_cortex_xl", "metta_cortex_agalite"):
        try:
            want = preset(name, obs_dim=cfg.obs_dim, num_actions=cfg.num_actions)
        except ConfigError:
            continue
        same = ("variant", "encoder", "ff_activation", "final_norm", "norm_bias", "critic_activation", "actor_layers")
        if all(getattr(cfg, f) == getattr(want, f) for f in same) and cfg.gating == want.gating:
            return plans.PLANS[name]
    raise MettaError(
        f"this {cfg.variant} config is not one of Metta's current policies (export writes Cortex XL / AGaLiTe "
        f"configs: config.preset('metta_cortex_xl' or 'metta_cortex_agalite', ...)); not exported"
    )


def spec_json(arch_text: str) -> str:
    return json.dumps({"class_path": CHECKPOINT_POLICY, "init_kwargs": {"architecture_spec": arch_text}}, indent=2)


def export_metta(dst: Path, tsd: dict, cfg: PolicyConfig, extra=None, extra_json=None) -> list[str]:
    """Write DIR/weights.safetensors + DIR/policy_spec.json (Metta's format since 2026-01); returns notes."""
    import torch
    from safetensors.torch import save_file

    with _layout_errors("Metta export"):
        state, arch_text, notes = metta_state_dict(tsd, cfg, extra, extra_json)
    parse_architecture(arch_text)  # what we write must read back as data
    meta = (extra_json or {}).get(EXTRA_JSON) or {}
    dst.mkdir()
    save_file({k: torch.from_numpy(np.array(v, order="C", copy=True)) for k, v in state.items()}, str(dst / WEIGHTS))
    spec = meta.get("spec_text") if meta.get("arch_text") == arch_text and meta.get("spec_text") else None
    (dst / SPEC_JSON).write_text(spec or spec_json(arch_text))
    return notes
