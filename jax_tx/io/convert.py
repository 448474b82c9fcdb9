"""PyTorch state_dict <-> Flax params, by generic rules checked against the model's own tree.

The flax tree mirrors the torch module tree, so one rule set serves every variant:

    torch key                         flax path
    layers.3.attn.qkv.weight   <->    layers_3/attn/qkv/kernel      (Linear: transpose)
    core.layers.0.norm1.weight <->    core/layers_0/norm1/scale     (LayerNorm: copy)
    emb.weight                 <->    emb/embedding                 (Embedding: copy)
    *.bias, raw parameters     <->    same name                     (copy)

The expected keys and shapes come from `jax.eval_shape` of the flax model's init, so a
missing, unexpected or misshapen weight is reported against the config, with the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jax_tx.config import PolicyConfig, preset

_INDEXED = re.compile(r"^(.*)_(\d+)$")
_RENAMED = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


class ConversionError(ValueError):
    """Weights and config do not fit; the message names the keys and the fix."""


def flax_path_to_torch_key(path: tuple[str, ...]) -> str:
    """('core', 'layers_0', 'attn', 'qkv', 'kernel') -> 'core.layers.0.attn.qkv.weight'."""
    parts = []
    for name in path[:-1]:
        m = _INDEXED.match(name)
        parts.extend([m.group(1), m.group(2)] if m else [name])
    parts.append(_RENAMED.get(path[-1], path[-1]))
    return ".".join(parts)


def param_template(cfg: PolicyConfig) -> dict[tuple[str, ...], jax.ShapeDtypeStruct]:
    """Flat {flax path: shape/dtype} of the params `make_policy(cfg).init` creates."""
    from jax_tx.models.policy import example_inputs, make_policy

    model = make_policy(cfg)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *example_inputs(cfg)))
    return flatten_dict(dict(variables["params"]))


def _expected_torch_shape(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(reversed(shape)) if path[-1] == "kernel" else tuple(shape)


def _gate_hint(key: str, want: tuple[int, ...], got: tuple[int, ...]) -> str:
    """nn.LSTM and nn.GRU weights share their names (weight_ih_l0, ...) and differ in rows: 4W (gates i, f, g, o)
    against 3W (r, z, n). A 4:3 or 3:4 row ratio on such a key names the other variant."""
    if not (re.search(r"(weight|bias)_(ih|hh)_l\d+$", key) and want and got and want[1:] == got[1:]):
        return ""
    if 3 * got[0] == 4 * want[0]:
        return "; these look like LSTM weights (4W rows): convert with variant 'lstm'"
    if 4 * got[0] == 3 * want[0]:
        return "; these look like GRU weights (3W rows): convert with variant 'gru'"
    return ""


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor; numpy has no bfloat16, go through float32
        import torch

        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()
    return np.asarray(value)


def _param_dtype(cfg: PolicyConfig, dtype: Any | None):
    if dtype is not None:
        return jnp.dtype(dtype)
    if cfg.dtype == "float64":
        if not jax.config.jax_enable_x64:
            raise ConversionError(
                "config dtype is float64 but jax_enable_x64 is off; call "
                "jax.config.update('jax_enable_x64', True) (or use jax.enable_x64()) first"
            )
        return jnp.float64
    return jnp.float32


def _key_signature(keys) -> set[str]:
    return {re.sub(r"\.\d+\.", ".#.", k) for k in keys}


def guess_variant(keys) -> str | None:
    """The variant whose parameter names (layer indices aside) best match `keys`."""
    from jax_tx.config import VARIANTS

    given = _key_signature(keys)
    best, best_score = None, 0.0
    for variant in VARIANTS:
        layout = dict(base_dim=1, slot_dim=3) if variant == "slot" else {}  # obs = [base 1 | one slot of 3]
        cfg = preset(
            variant, obs_dim=4, num_actions=2, d_model=8, num_heads=2, d_head=4, d_ff=8, num_layers=1, **layout
        )
        expected = _key_signature(flax_path_to_torch_key(p) for p in param_template(cfg))
        score = len(given & expected) / max(len(given | expected), 1)
        if score > best_score:
            best, best_score = variant, score
    return best


def _check_keys(cfg: PolicyConfig, expected: set[str], given: set[str]) -> None:
    missing, extra = sorted(expected - given), sorted(given - expected)
    if not (missing or extra):
        return
    guess = guess_variant(given)
    hint = (
        f" These weights look like variant {guess!r}; convert with that variant's config."
        if guess and guess != cfg.variant
        else " Check that the config (layers, aux_tokens, gating, ...) is the one the weights were trained with."
    )
    raise ConversionError(
        f"weights do not match variant {cfg.variant!r}: missing keys {missing[:12]}"
        f"{' ...' if len(missing) > 12 else ''} ({len(missing)} in all); unexpected keys {extra[:12]}"
        f"{' ...' if len(extra) > 12 else ''} ({len(extra)} in all).{hint}"
    )


def torch_to_flax(state_dict: Mapping[str, Any], cfg: PolicyConfig, dtype: Any | None = None) -> dict:
    """torch state_dict -> flax variables {"params": ...} for make_policy(cfg).

    Values are copied bit-exactly (Linear weights transposed); bfloat16 goes through
    float32. `dtype` overrides the parameter dtype (default: float32, float64 for
    float64 configs).
    """
    template = param_template(cfg)
    by_key = {flax_path_to_torch_key(p): p for p in template}
    _check_keys(cfg, set(by_key), set(state_dict))
    target = _param_dtype(cfg, dtype)
    flat = {}
    for key, path in by_key.items():
        value = _to_numpy(state_dict[key])
        want = _expected_torch_shape(path, template[path].shape)
        if value.shape != want:
            hint = _gate_hint(key, want, value.shape)
            raise ConversionError(
                f"shape mismatch at {key!r}: the config expects {want}, the weights have {value.shape}; "
                f"the config does not match these weights (check d_model, num_heads, d_ff, ...){hint}"
            )
        if path[-1] == "kernel":
            value = value.T
        flat[path] = jnp.asarray(value.astype(target, copy=False))
    return {"params": unflatten_dict(flat)}


def flax_to_torch(params: Mapping[str, Any], cfg: PolicyConfig, dtype: Any | None = None) -> dict:
    """flax variables (or the bare params tree) -> torch state_dict for torch_ref.make_policy(cfg)."""
    import torch

    tree = params["params"] if "params" in params else params
    flat = flatten_dict(dict(tree))
    template = param_template(cfg)
    expected = {flax_path_to_torch_key(p) for p in template}
    given = {flax_path_to_torch_key(p) for p in flat}
    _check_keys(cfg, expected, given)
    state = {}
    for path, value in sorted(flat.items()):
        arr = np.asarray(value)
        if arr.dtype == jnp.bfloat16:
            arr = arr.astype(np.float32)
        if arr.shape != tuple(template[path].shape):
            raise ConversionError(
                f"shape mismatch at {'/'.join(path)!r}: the config expects {tuple(template[path].shape)}, "
                f"the params have {arr.shape}; the config does not match these weights"
            )
        if path[-1] == "kernel":
            arr = arr.T
        t = torch.from_numpy(np.array(arr, copy=True))
        state[flax_path_to_torch_key(path)] = t if dtype is None else t.to(dtype)
    return state
