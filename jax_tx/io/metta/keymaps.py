"""Key maps shared by every Metta policy: the token encoder, the heads, and the bookkeeping of a map.

Metta key layouts (metta_interop.md sections 2-4; metta_torch_stack.md section 11):

    TransformerPolicy (pickles until 2025-11)     attribute names: obs_shim., obs_tokenizer., obs_encoder.,
                                                  transformer_module., actor_head.module.0., logits_head.module., ...
    PolicyAutoBuilder (ViT-sliding, Cortex)       _sequential_network.module.<component>.func.<attr>
                                                  (`network.module.` with older tensordict is read the same)

A `KeyMap` consumes Metta tensors into torch_ref keys (`put`, `take`); every Metta key must end up
used or dropped with a reason, and what is left names the model as unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jax_tx.io.metta.errors import MettaError

AUTO = "_sequential_network.module."
OLD_AUTO = "network.module."
TP_ENCODER = ("obs_shim.", "obs_tokenizer.", "obs_encoder.")
AUTO_ENCODER = (
    f"{AUTO}obs_shim_tokens.func.",
    f"{AUTO}obs_attr_embed_fourier.func.",
    f"{AUTO}obs_perceiver_latent.func.",
)
METTA_OBS_TOKENS = 200
"""Tokens per step of Metta's observations (its experience spec hard-codes [200, 3]): the imported obs_dim."""


def normalize_keys(state: dict) -> tuple[dict, str]:
    """Rewrite the older `network.module.` prefix to `_sequential_network.module.`; returns (state, prefix)."""
    if any(k.startswith(OLD_AUTO) for k in state) and not any(k.startswith(AUTO) for k in state):
        return {AUTO + k[len(OLD_AUTO) :] if k.startswith(OLD_AUTO) else k: v for k, v in state.items()}, OLD_AUTO
    return dict(state), AUTO


def denormalize_keys(state: dict, prefix: str) -> dict:
    if prefix == AUTO:
        return state
    return {prefix + k[len(AUTO) :] if k.startswith(AUTO) else k: v for k, v in state.items()}


def as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        import torch

        t = value.detach().cpu()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    return np.asarray(value)


@dataclass
class KeyMap:
    """Metta tensors (numpy) -> torch_ref tensors, with an account of every key."""

    src: dict[str, np.ndarray]
    out: dict[str, np.ndarray] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    config_keys: set[str] = field(default_factory=set)
    """Buffers read as configuration (remap, value normalisers), not as weights: any dtype is fine."""

    def has(self, key: str) -> bool:
        return key in self.src

    def take(self, key: str) -> np.ndarray:
        if key not in self.src:
            raise MettaError(f"the checkpoint lacks {key!r}; it is incomplete or not the Metta policy it looks like")
        self.used.add(key)
        return self.src[key]

    def put(self, key: str, value: np.ndarray) -> None:
        self.out[key] = np.asarray(value)

    def rename(self, metta_key: str, torch_key: str) -> None:
        self.put(torch_key, self.take(metta_key))

    def drop(self, key: str, why: str) -> None:
        if key in self.src:
            self.used.add(key)
            self.dropped[key] = why

    def drop_prefix(self, prefix: str, why: str) -> list[str]:
        keys = [k for k in self.src if k.startswith(prefix)]
        for k in keys:
            self.drop(k, why)
        return keys

    def count(self, fmt: str) -> int:
        """Number of consecutive layers i = 0, 1, ... for which some key starts with fmt.format(i)."""
        n = 0
        while any(k.startswith(fmt.format(n)) for k in self.src):
            n += 1
        return n

    def leftover(self) -> list[str]:
        return sorted(set(self.src) - self.used)


def linear(km: KeyMap, metta: str, torch_key: str, bias: bool = True) -> None:
    km.rename(f"{metta}weight", f"{torch_key}.weight")
    if bias:
        km.rename(f"{metta}bias", f"{torch_key}.bias")


# ----------------------------------------------------------------------------- token encoder


def encoder_prefixes(auto: bool) -> tuple[str, str, str]:
    return AUTO_ENCODER if auto else TP_ENCODER


def import_encoder(km: KeyMap, auto: bool) -> tuple[dict[str, Any], int]:
    """Metta's obs shim + Fourier tokenizer + Perceiver -> torch_ref `encoder.*`; returns (config fields, latent width).

    The shim's feature-id remap r and value normalisers n are folded exactly: E'[i] = E[r[i]], n'[i] = n[r[i]].
    """
    shim, tok, enc = encoder_prefixes(auto)
    embeds = km.take(f"{tok}_attr_embeds.weight")
    norms = np.ones(256, np.float64)
    if km.has(f"{shim}attr_val_normer._norm_factors"):
        norms = km.take(f"{shim}attr_val_normer._norm_factors").astype(np.float64)
        km.config_keys.add(f"{shim}attr_val_normer._norm_factors")
    remap_key = f"{shim}token_pad_striper.feature_id_remap"
    if km.has(remap_key):
        remap = km.take(remap_key).astype(np.int64)
        km.config_keys.add(remap_key)
        if not np.array_equal(remap, np.arange(remap.size)):
            if embeds.shape[0] != 256 or remap.size != 256:
                raise MettaError(
                    "the checkpoint remaps feature ids but its attribute table is not 256 rows; unsupported"
                )
            embeds, norms = embeds[remap], norms[remap]
            km.notes.append("folded the shim's feature-id remap into the attribute embedding and value normalisers")
    km.put("encoder.attr_embeds.weight", embeds)
    width = km.src[f"{enc}token_norm.weight"].shape[0]
    freqs, rem = divmod(width - embeds.shape[1] - 1, 4)
    if rem or freqs < 1:
        raise MettaError(
            f"token width {width} is not attr_embed_dim {embeds.shape[1]} + 4 K + 1; not Metta's tokenizer"
        )
    if km.has(f"{tok}frequencies"):
        got = km.take(f"{tok}frequencies").astype(np.float64).ravel()
        if not np.array_equal(got, 2.0 ** np.arange(freqs)):
            raise MettaError(
                f"tokenizer frequencies {got.tolist()} are not 2^k; jax_tx's tokenizer cannot express them"
            )
        km.dropped[f"{tok}frequencies"] = "tokenizer frequencies (recomputable: 2^k)"
    for key in [k for k in km.src if k.startswith(enc)]:
        km.rename(key, "encoder." + key[len(enc) :])
    latents = km.out["encoder.latents"]
    layers = km.count(enc + "layers.{}.")
    latent_dim = latents.shape[-1]
    values = [float(v) for v in norms]
    while values and values[-1] == 1.0:
        values.pop()
    return dict(
        encoder="tokens",
        token_attr_vocab=int(embeds.shape[0]),
        token_attr_embed_dim=int(embeds.shape[1]),
        token_fourier_freqs=int(freqs),
        token_num_latents=int(latents.shape[1]),
        token_num_layers=int(layers),
        token_mlp_ratio=int(km.out["encoder.layers.0.mlp.0.weight"].shape[0] // latent_dim),
        token_value_norms=tuple(values),
        token_grid_size=11,
    ), int(latent_dim)


def export_encoder(tsd: dict[str, np.ndarray], cfg, auto: bool) -> dict[str, np.ndarray]:
    """torch_ref `encoder.*` -> Metta's shim, tokenizer and Perceiver keys (identity remap)."""
    shim, tok, enc = encoder_prefixes(auto)
    out = {
        f"{shim}token_pad_striper.feature_id_remap": np.arange(256, dtype=np.uint8),
        f"{shim}attr_val_normer._norm_factors": _norm_table(cfg),
        f"{tok}_attr_embeds.weight": tsd["encoder.attr_embeds.weight"],
        f"{tok}frequencies": (2.0 ** np.arange(cfg.token_fourier_freqs)).astype(np.float32),
    }
    for key, value in tsd.items():
        if key.startswith("encoder.") and key != "encoder.attr_embeds.weight" and not key.startswith("encoder.input_"):
            out[enc + key[len("encoder.") :]] = value
    return out


def _norm_table(cfg) -> np.ndarray:
    table = np.ones(256, np.float32)
    table[: len(cfg.token_value_norms)] = cfg.token_value_norms
    return table


# ----------------------------------------------------------------------------- heads

MLP = "{}.func.network.module.{}.module."


def auto_mlp(name: str, i: int) -> str:
    return AUTO + MLP.format(name, i)


ACTOR_HEAD = f"{AUTO}actor_head.func._module.module."


def import_tp_heads(km: KeyMap) -> None:
    """TransformerPolicy: actor ReLU(D->256) -> A, critic tanh(D->512) -> 1 (section 4.1: pure renames)."""
    linear(km, "actor_head.module.0.", "actor_fc")
    linear(km, "logits_head.module.", "actor_out")
    linear(km, "critic_head.module.0.", "critic_fc")
    linear(km, "value_head.module.", "critic_out")


def export_tp_heads(tsd: dict) -> dict:
    names = {
        "actor_fc": "actor_head.module.0.",
        "actor_out": "logits_head.module.",
        "critic_fc": "critic_head.module.0.",
    }
    names["critic_out"] = "value_head.module."
    return {f"{m}{p}": tsd[f"{t}.{p}"] for t, m in names.items() for p in ("weight", "bias")}


def import_relu_critic(km: KeyMap) -> None:
    linear(km, auto_mlp("critic", 0), "critic_fc")
    linear(km, auto_mlp("critic", 2), "critic_out")


def export_relu_critic(tsd: dict, name: str = "critic") -> dict:
    out = {}
    for i, t in ((0, "critic_fc"), (2, "critic_out")):
        for p in ("weight", "bias"):
            out[f"{auto_mlp(name, i)}{p}"] = tsd[f"{t}.{p}"]
    return out


def import_cortex_actor(km: KeyMap) -> None:
    """actor_mlp D->256 ReLU ->256 (no activation after) then ActorHead 256->A: actor_layers=2, renames."""
    linear(km, auto_mlp("actor_mlp", 0), "actor_fc")
    linear(km, auto_mlp("actor_mlp", 2), "actor_fc2")
    linear(km, ACTOR_HEAD, "actor_out")


def export_cortex_actor(tsd: dict) -> dict:
    out = {}
    for m, t in (
        (auto_mlp("actor_mlp", 0), "actor_fc"),
        (auto_mlp("actor_mlp", 2), "actor_fc2"),
        (ACTOR_HEAD, "actor_out"),
    ):
        for p in ("weight", "bias"):
            out[m + p] = tsd[f"{t}.{p}"]
    return out


def import_linear_actor(km: KeyMap) -> None:
    """Metta's Linear(D->A) actor as actor_fc = [I; -I] (zero bias), actor_out = [W, -W].

    Exact: W relu(y) - W relu(-y) = W y."""
    w, b = km.take(ACTOR_HEAD + "weight"), km.take(ACTOR_HEAD + "bias")
    d = w.shape[1]
    eye = np.eye(d, dtype=w.dtype)
    km.put("actor_fc.weight", np.concatenate([eye, -eye], axis=0))
    km.put("actor_fc.bias", np.zeros(2 * d, w.dtype))
    km.put("actor_out.weight", np.concatenate([w, -w], axis=1))
    km.put("actor_out.bias", b)


def export_linear_actor(tsd: dict) -> dict:
    fc, out = tsd["actor_fc.weight"], tsd["actor_out.weight"]
    d = fc.shape[1]
    eye = np.eye(d, dtype=fc.dtype)
    w = out[:, :d]
    if not (
        np.array_equal(fc, np.concatenate([eye, -eye]))
        and not tsd["actor_fc.bias"].any()
        and np.array_equal(out[:, d:], -w)
    ):
        raise MettaError(
            "the actor is no longer Metta's linear head (actor_fc != [I; -I] or actor_out != [W, -W]); it cannot be "
            "exported to ViT-sliding's Linear(D -> A) exactly"
        )
    return {ACTOR_HEAD + "weight": w, ACTOR_HEAD + "bias": tsd["actor_out.bias"]}
