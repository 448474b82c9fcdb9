"""`jax-tx convert SRC DST`: move policy weights between PyTorch and Flax/orbax, config included.

Formats (from the path):
    .pt / .pth      torch.save({"config": cfg.to_dict(), "state_dict": ...}); a bare state dict is read
                    with --config / --variant
    .safetensors    torch tensors, config JSON in the metadata under "jax_tx_config"
    DIR (no suffix) orbax checkpoint directory as jax_tx.io.checkpoint writes it (step 0; SRC: latest or --step)
    .msgpack        flax.serialization of {"params": ...}, config JSON beside it in <stem>.config.json
    Metta           SRC: Metta's .pt pickle (allowlisted unpickler, never runs code), .mpt zip or checkpoint
                    directory; DST with --to metta: Metta's directory (weights.safetensors + policy_spec.json)

Weights pass through float32 (float64 for float64 configs); --dtype picks the stored dtype.
DST is written under a temporary sibling name, read back (and checked by --verify), then
renamed into place; an existing DST is refused without --force. Every failure prints one
line naming the problem and the fix and exits 2; --verify above tolerance exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_tx.config import VARIANTS, ConfigError, PolicyConfig, preset
from jax_tx.io.convert import ConversionError
from jax_tx.io.formats import (
    FLAX_FORMATS,
    ConvertError,
    Loaded,
    commit,
    config_from,
    convert_to_torch,
    detect_format,
    read,
    remove,
    sidecar,
    sweep_dir,
    sweep_stale,
    temp_sibling,
    write,
)

PAUSE_ENV = "JAX_TX_CONVERT_PAUSE_BEFORE_RENAME"
"""Seconds to sleep between writing the temporary DST and renaming it (lets tests kill mid-write)."""

__all__ = ["ConvertError", "main", "run", "parse_args"]


# ----------------------------------------------------------------------------- config and weights


def torch_shapes(loaded: Loaded) -> dict[str, tuple[int, ...]]:
    """{torch key: torch shape} of the loaded weights, whichever framework they are in."""
    from flax.traverse_util import flatten_dict

    from jax_tx.io.convert import flax_path_to_torch_key

    if loaded.fmt not in FLAX_FORMATS:
        return {k: tuple(v.shape) for k, v in loaded.weights.items()}
    flat = flatten_dict(dict(loaded.weights["params"]))
    return {
        flax_path_to_torch_key(p): tuple(reversed(np.shape(v))) if p[-1] == "kernel" else tuple(np.shape(v))
        for p, v in flat.items()
    }


def config_for_variant(variant: str, shapes: dict[str, tuple[int, ...]]) -> PolicyConfig:
    """preset(variant) at default sizes, obs_dim and num_actions read from encoder / actor_out."""
    enc, act = shapes.get("encoder.weight"), shapes.get("actor_out.weight")
    if not (enc and act and len(enc) == 2 and len(act) == 2):
        raise ConvertError(
            f"cannot infer obs_dim/num_actions for --variant {variant} (no encoder.weight/actor_out.weight); "
            f"pass --config with the resolved config instead"
        )
    try:
        return preset(variant, obs_dim=enc[1], num_actions=act[0])
    except ConfigError as e:
        raise ConvertError(f"--variant {variant}: {e}; pass --config with the resolved config instead") from e


def _differing_fields(a: PolicyConfig, b: PolicyConfig) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    return sorted(k for k in da if da[k] != db.get(k))


def resolve_config(loaded: Loaded, src: Path, config_file: Path | None, variant: str | None) -> PolicyConfig:
    """The stored config, or --config, or --variant's preset; a conflict is an error."""
    given, flag = None, None
    if config_file is not None:
        if not config_file.is_file():
            raise ConvertError(f"--config {config_file} does not exist; pass a config JSON (PolicyConfig.to_json)")
        given, flag = config_from(config_file.read_text(), f"--config {config_file}"), "--config"
    elif variant is not None:
        if loaded.cfg is not None:
            given, flag = (loaded.cfg if loaded.cfg.variant == variant else None), "--variant"
            if given is None:
                raise ConvertError(
                    f"{src} stores a config of variant {loaded.cfg.variant!r} but --variant says {variant!r}; "
                    f"drop --variant to use the stored config"
                )
        else:
            given, flag = config_for_variant(variant, torch_shapes(loaded)), "--variant"
    if loaded.cfg is not None and given is not None and given != loaded.cfg:
        raise ConvertError(
            f"{src} stores a config that differs from {flag} in {_differing_fields(loaded.cfg, given)}; "
            f"drop {flag} to use the stored config"
        )
    cfg = loaded.cfg or given
    if cfg is None:
        raise ConvertError(
            f"{src} holds bare weights without a config; pass --config cfg.json (the resolved config they were "
            f"trained with) or --variant V (preset sizes)"
        )
    return cfg


def _dtype_name(value: Any) -> str:
    dtype = value.dtype
    return str(dtype).removeprefix("torch.") if hasattr(value, "is_floating_point") else np.dtype(dtype).name


def check_dtypes(loaded: Loaded, target: str, explicit: bool) -> None:
    """Weights must be floating point; float64 weights are not narrowed unless --dtype asks for it."""
    leaves = jax.tree_util.tree_flatten_with_path(loaded.weights)[0]
    names = {jax.tree_util.keystr(p): _dtype_name(v) for p, v in leaves}
    bad = sorted((k, d) for k, d in names.items() if d not in ("float16", "bfloat16", "float32", "float64"))
    if bad:
        raise ConvertError(
            f"weight {bad[0][0]} has dtype {bad[0][1]}; policy weights must be floating point (re-export as float32)"
        )
    if target != "float64" and not explicit and "float64" in names.values():
        raise ConvertError(
            f"the weights are float64 and would be rounded to {target}; pass --dtype float64 to keep them "
            f"or --dtype {target} to round on purpose"
        )


def compute_dtype(cfg: PolicyConfig) -> str:
    return "float64" if cfg.dtype == "float64" else "float32"


def as_flax(loaded: Loaded, cfg: PolicyConfig, dtype: str) -> dict:
    """Loaded weights -> flax variables {"params": ...} of `dtype`, keys and shapes checked against cfg."""
    from jax_tx.io import convert

    try:
        if loaded.fmt not in FLAX_FORMATS:
            return convert.torch_to_flax(loaded.weights, cfg, dtype=jnp.dtype(dtype))
        convert.flax_to_torch(loaded.weights, cfg)  # the key, variant and shape checks
    except ConversionError as e:
        raise ConvertError(str(e)) from e
    return {"params": jax.tree.map(lambda x: jnp.asarray(np.asarray(x).astype(dtype)), loaded.weights["params"])}


def storage_tree(canonical: dict, dtype: str) -> dict:
    """The flax variables as they will be stored (in `dtype`)."""
    return jax.tree.map(lambda x: x.astype(dtype), canonical)


# ----------------------------------------------------------------------------- the command


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other conversion error
        self.exit(2, f"jax-tx convert: error: {message}; see jax-tx convert --help\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(
        prog="jax-tx convert",
        description="Convert policy weights between PyTorch (.pt/.pth, .safetensors) and Flax (orbax directory, "
        ".msgpack + <stem>.config.json), and from/to Metta's own checkpoints (.pt pickle, .mpt, checkpoint directory "
        "or its .zip; --to metta). The resolved config travels with the weights.",
    )
    p.add_argument("src", type=Path, help="source checkpoint")
    p.add_argument("dst", type=Path, help="destination (format from the suffix; no suffix: orbax directory)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--variant", choices=VARIANTS, help="bare weights: that variant's preset, dims from the weights")
    g.add_argument("--config", type=Path, help="bare weights: the config JSON they were trained with")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float64"), help="stored dtype (default float32)")
    p.add_argument("--step", type=int, help="orbax SRC: the step to read (default: latest)")
    p.add_argument("--verify", action="store_true", help="run both twins on random inputs; exit 1 above --tol")
    p.add_argument("--tol", type=float, help="--verify max-abs tolerance (default 1e-5; 1e-10 for float64)")
    p.add_argument("--force", action="store_true", help="replace an existing DST")
    p.add_argument("--to", choices=("metta",), help="DST format: metta = Metta's checkpoint directory")
    return p.parse_args(argv)


def verify_conversion(src_fmt: str, reference: dict, written: dict, cfg: PolicyConfig, tol: float) -> bool:
    """Torch twin on one side's weights, flax twin on the other's; print the report; True when within tol."""
    from jax_tx.io.verify import format_report, verify_twins

    flax_side, torch_side = (reference, written) if src_fmt in FLAX_FORMATS else (written, reference)
    report = verify_twins(cfg, convert_to_torch(torch_side, cfg), flax_side)
    worst = max(report.values())
    print(f"verify: max-abs difference, {src_fmt} SRC vs converted DST, 3 chunks x 6 steps with resets (tol {tol:g})")
    print(format_report(report, tol))
    print(f"verify: {'ok' if worst <= tol else 'FAILED'} (worst {worst:.3e})")
    return worst <= tol


def report_rounding(src_fmt: str, canonical: dict, written: dict, cfg: PolicyConfig, out_dtype: str) -> float:
    """Print (and return) the twins' difference between the original weights and the stored (rounded) ones."""
    from jax_tx.io.verify import verify_twins

    flax_side, torch_side = (canonical, written) if src_fmt in FLAX_FORMATS else (written, canonical)
    worst = max(verify_twins(cfg, convert_to_torch(torch_side, cfg), flax_side).values())
    print(
        f"verify: vs the original {compute_dtype(cfg)} weights (before rounding to {out_dtype}): worst {worst:.3e} "
        f"(the {out_dtype} rounding, reported, not checked against --tol)"
    )
    return worst


def run(args: argparse.Namespace) -> int:
    """Convert args.src to args.dst; raises ConvertError; returns 1 when --verify fails."""
    src, dst = args.src, args.dst
    src_fmt, dst_fmt = detect_format(src), "metta" if args.to == "metta" else detect_format(dst, source=False)
    if dst_fmt == "metta" and args.to != "metta":
        raise ConvertError(f"{dst}: jax_tx writes Metta's checkpoint directory, not .mpt/.zip; pass --to metta")
    if src.absolute().resolve() == dst.absolute().resolve():
        raise ConvertError(f"SRC and DST are the same path {src}; choose another DST")
    sweep_stale(dst)
    if dst_fmt == "msgpack":
        sweep_stale(sidecar(dst))
    sweep_dir(dst.absolute().parent)  # temporaries of killed conversions into other DSTs of this directory
    if (dst.exists() or dst.is_symlink()) and not args.force:
        raise ConvertError(f"{dst} exists; pass --force to replace it, or choose another DST")
    if not dst.absolute().parent.is_dir():
        raise ConvertError(f"the directory of {dst} does not exist; create it first")
    loaded = read(src, src_fmt, args.step)
    cfg = resolve_config(loaded, src, args.config, args.variant)
    out_dtype = args.dtype or compute_dtype(cfg)
    check_dtypes(loaded, out_dtype, explicit=args.dtype is not None)
    x64 = "float64" in (out_dtype, compute_dtype(cfg))
    tmp, config_tmp = temp_sibling(dst), temp_sibling(sidecar(dst))
    with jax.enable_x64(True) if x64 else contextlib.nullcontext():
        try:
            canonical = as_flax(loaded, cfg, compute_dtype(cfg))
        except ConvertError as e:
            if args.variant and loaded.cfg is None:
                raise ConvertError(f"{e} (--variant {args.variant} uses that preset's sizes; pass --config)") from e
            raise
        print(f"read  {src} ({src_fmt}, {cfg.variant}, {_count(canonical)} parameters)")
        for note in loaded.notes:
            print(f"note: {note}")
        try:
            stored = storage_tree(canonical, out_dtype)
            with signals_deferred():  # a SIGTERM inside orbax's async write would hang it: act after it
                notes = write(dst_fmt, tmp, stored, cfg, config_tmp, loaded)
                back = read(tmp, dst_fmt, config_path=config_tmp)
            for note in notes:
                print(f"note: {note}")
            same_cfg = back.cfg == cfg or dst_fmt == "metta"  # Metta's spec does not carry every jax_tx field
            if not same_cfg or not _trees_equal(as_flax(back, cfg, out_dtype), stored):
                raise ConvertError(f"{dst} did not read back identically after writing; the disk may be full")
            if args.verify:
                reference = storage_tree(storage_tree(canonical, out_dtype), compute_dtype(cfg))
                written = as_flax(back, cfg, compute_dtype(cfg))
                if not verify_conversion(
                    src_fmt, reference, written, cfg, args.tol if args.tol is not None else _default_tol(cfg)
                ):
                    print(f"not written: {dst} (the conversion failed verification)", file=sys.stderr)
                    return 1
                if out_dtype != compute_dtype(cfg):
                    report_rounding(src_fmt, canonical, written, cfg, out_dtype)
            if os.environ.get(PAUSE_ENV):
                print(f"pausing {os.environ[PAUSE_ENV]}s before the rename", file=sys.stderr, flush=True)
                time.sleep(float(os.environ[PAUSE_ENV]))
            if dst_fmt == "msgpack":  # weights first, then their config: a kill between leaves no orphan sidecar
                remove(sidecar(dst))  # and never pairs new weights with the config of the replaced ones
            commit(tmp, dst, args.force)
            if dst_fmt == "msgpack":
                commit(config_tmp, sidecar(dst), force=True)
        finally:
            remove(tmp)
            remove(config_tmp)
    extra = f" + {sidecar(dst).name}" if dst_fmt == "msgpack" else ""
    print(f"wrote {dst}{extra} ({dst_fmt}, {out_dtype})")
    return 0


def _default_tol(cfg: PolicyConfig) -> float:
    from jax_tx.io.verify import default_tol

    return default_tol(cfg)


def _count(tree: dict) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


def _trees_equal(a: dict, b: dict) -> bool:
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `jax-tx convert`; returns the exit code (0 ok, 1 verify failed, 2 error)."""
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    from jax_tx.io.recovery import quiet_orbax_noise

    quiet_orbax_noise()  # a damaged orbax SRC: no tensorstore tracebacks after our one-line error
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: keep the handler as it is
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except ConvertError as e:
        print(f"jax-tx convert: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions, ...: DST was not written (run() removed the temporary)
        print(f"jax-tx convert: error: {e}; DST was not written, fix the cause and run again", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_DEFERRED = {"depth": 0, "signum": None}


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGTERM while orbax writes or reads (it would hang there); exit 128 + signum right after."""
    _DEFERRED["depth"] += 1
    try:
        yield
    finally:
        _DEFERRED["depth"] -= 1
    if _DEFERRED["depth"] == 0 and _DEFERRED["signum"] is not None:
        raise SystemExit(128 + _DEFERRED["signum"])


def _terminate(signum, frame) -> None:
    if _DEFERRED["depth"]:
        _DEFERRED["signum"] = signum
        return
    raise SystemExit(128 + signum)  # unwinds through run()'s cleanup of the temporary DST


if __name__ == "__main__":
    sys.exit(main())
