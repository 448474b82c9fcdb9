"""Per-policy maps between Metta's state dicts and torch_ref's (metta_interop.md section 4).

    plan = detect(keys)                  # one of PLANS, or MettaError (unsupported / refused with the reason)
    overrides = plan.read(km, arch)      # fills km.out (torch_ref keys) and returns config fields
    metta = plan.write(torch_sd, cfg)    # the inverse: Metta keys (canonical form) from torch_ref weights

Exactness: renames and reshapes are bit-exact; the Cortex XL bias folds are exact in real arithmetic
(r_w = u + b_q, r_r = v + b_q; b_k cancels in the softmax; b_o' = b_o + W_o b_v since attention rows
sum to 1), so their outputs agree to rounding (~1e-15 in float64).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jax_tx.io.metta import keymaps as K
from jax_tx.io.metta.arch import find_field
from jax_tx.io.metta.errors import MettaError

CORTEX = f"{K.AUTO}cortex.func.stack."
SLIDING = f"{K.AUTO}sliding_transformer.func."
GATE_NAMES = {"Wr": "w_r", "Ur": "u_r", "Wz": "w_z", "Uz": "u_z", "Wg": "w_g", "Ug": "u_g"}


@dataclass(frozen=True)
class Plan:
    name: str  # the jax_tx Metta preset
    auto: bool  # PolicyAutoBuilder key layout
    marker: str  # a key prefix that identifies it
    read: Callable
    write: Callable
    caveat: str  # printed on import: what is and is not exact


def _block(i: int) -> str:
    return f"{CORTEX}blocks.{i}.experts.0."


def _cortex_block_read(km: K.KeyMap, i: int) -> None:
    """Norms (no bias), SiLU feed-forward, the two GRU gates of a PostUpGatedBlock -> core.layers.i."""
    src, dst = _block(i), f"core.layers.{i}."
    km.rename(f"{src}norm1.weight", f"{dst}norm1.weight")
    km.rename(f"{src}norm2.weight", f"{dst}norm2.weight")
    K.linear(km, f"{src}ffn_in.", f"{dst}ff.fc1")
    K.linear(km, f"{src}ffn_out.", f"{dst}ff.fc2")
    for g in ("gate1", "gate2"):
        for m, t in GATE_NAMES.items():
            km.rename(f"{src}{g}.{m}.weight", f"{dst}{g}.{t}.weight")
        km.rename(f"{src}{g}.bg", f"{dst}{g}.bg")


def _cortex_block_write(tsd: dict, i: int) -> dict:
    src, dst = f"core.layers.{i}.", _block(i)
    out = {f"{dst}norm1.weight": tsd[f"{src}norm1.weight"], f"{dst}norm2.weight": tsd[f"{src}norm2.weight"]}
    for m, t in (("ffn_in", "ff.fc1"), ("ffn_out", "ff.fc2")):
        out[f"{dst}{m}.weight"], out[f"{dst}{m}.bias"] = tsd[f"{src}{t}.weight"], tsd[f"{src}{t}.bias"]
    for g in ("gate1", "gate2"):
        for m, t in GATE_NAMES.items():
            out[f"{dst}{g}.{m}.weight"] = tsd[f"{src}{g}.{t}.weight"]
        out[f"{dst}{g}.bg"] = tsd[f"{src}{g}.bg"]
    return out


def _cortex_common_read(km: K.KeyMap, arch) -> tuple[dict, int]:
    enc, latent = K.import_encoder(km, auto=True)
    layers = km.count(CORTEX + "blocks.{}.")
    for i in range(layers):
        _cortex_block_read(km, i)
    K.linear(km, f"{CORTEX}norm.", "final_norm")
    K.import_cortex_actor(km)
    K.import_relu_critic(km)
    km.drop_prefix(f"{K.AUTO}gtd_aux.", "gtd_aux (Cortex's auxiliary value head, not part of the policy)")
    d = km.out["core.layers.0.norm1.weight"].shape[0]
    fields = dict(
        enc,
        d_model=int(d),
        num_layers=int(layers),
        d_ff=int(km.out["core.layers.0.ff.fc1.weight"].shape[0]),
        actor_hidden=int(km.out["actor_fc.weight"].shape[0]),
        critic_hidden=int(km.out["critic_fc.weight"].shape[0]),
        token_latent_dim=0 if latent == d else latent,
    )
    return fields, d


def _cortex_common_write(tsd: dict, cfg) -> dict:
    out = K.export_encoder(tsd, cfg, auto=True)
    for i in range(cfg.num_layers):
        out.update(_cortex_block_write(tsd, i))
    out[f"{CORTEX}norm.weight"], out[f"{CORTEX}norm.bias"] = tsd["final_norm.weight"], tsd["final_norm.bias"]
    out.update(K.export_cortex_actor(tsd))
    out.update(K.export_relu_critic(tsd))
    out.update(K.export_relu_critic(tsd, "gtd_aux"))  # HEAD trains it; a copy of the critic is a valid start
    return out


def int_field(arch, names, component, default, what, km):
    """A size the weights do not show, from the architecture (find_field), else Metta's default with a note."""
    value = find_field(arch, names, component) if arch is not None else None
    if value is None:
        km.notes.append(f"{what} = {default}: not in the weights nor the architecture (Metta's default)")
        return default
    return int(value)


def _xl_read(km: K.KeyMap, arch) -> dict:
    fields, d = _cortex_common_read(km, arch)
    heads, d_head = km.src[_block(0) + "cell.u"].shape
    for i in range(fields["num_layers"]):
        src, dst = _block(i) + "cell.", f"core.layers.{i}.attn."
        wq, wk, wv = (km.take(f"{src}{c}_proj.weight") for c in "qkv")
        bq, bv = km.take(f"{src}q_proj.bias"), km.take(f"{src}v_proj.bias")
        km.drop(f"{src}k_proj.bias", "k_proj.bias (cancels in the softmax: (q + u) . b_k is the same for every key)")
        km.put(f"{dst}qkv.weight", np.concatenate([wq, wk, wv], axis=0))
        km.put(f"{dst}r_w_bias", km.take(f"{src}u") + bq.reshape(heads, d_head))
        km.put(f"{dst}r_r_bias", km.take(f"{src}v") + bq.reshape(heads, d_head))
        wo = km.take(f"{src}o_proj.weight")
        km.put(f"{dst}o_net.weight", wo)
        km.put(f"{dst}o_net.bias", km.take(f"{src}o_proj.bias") + wo @ bv)
        km.rename(f"{src}r_proj.weight", f"{dst}r_net.weight")
    memory = int_field(arch, ("mem_len", "memory_len"), None, 128, "memory_len", km)
    return dict(fields, num_heads=int(heads), d_head=0 if heads * d_head == d else int(d_head), memory_len=memory)


def _xl_write(tsd: dict, cfg) -> dict:
    out = _cortex_common_write(tsd, cfg)
    n, h = cfg.num_heads, cfg.head_dim
    for i in range(cfg.num_layers):
        src, dst = f"core.layers.{i}.attn.", _block(i) + "cell."
        wq, wk, wv = np.split(tsd[f"{src}qkv.weight"], 3, axis=0)
        zero = np.zeros(n * h, wq.dtype)
        out.update({f"{dst}q_proj.weight": wq, f"{dst}k_proj.weight": wk, f"{dst}v_proj.weight": wv})
        out.update({f"{dst}q_proj.bias": zero, f"{dst}k_proj.bias": zero, f"{dst}v_proj.bias": zero})
        out[f"{dst}u"], out[f"{dst}v"] = tsd[f"{src}r_w_bias"], tsd[f"{src}r_r_bias"]
        out[f"{dst}o_proj.weight"], out[f"{dst}o_proj.bias"] = tsd[f"{src}o_net.weight"], tsd[f"{src}o_net.bias"]
        out[f"{dst}r_proj.weight"] = tsd[f"{src}r_net.weight"]
    return out


def _agalite_read(km: K.KeyMap, arch) -> dict:
    fields, d = _cortex_common_read(km, arch)
    heads = int_field(arch, ("num_heads", "n_heads"), "agalitecell", 8, "AGaLiTe num_heads", km)
    inner = km.src[_block(0) + "cell.out_proj.weight"].shape[1]
    kqvbg, p123 = (km.src[_block(0) + f"cell.{n}.weight"].shape[0] for n in ("kqvbg_proj", "p123_proj"))
    if inner % heads or kqvbg != 5 * inner or p123 % (3 * heads):
        raise MettaError(
            f"AGaLiTe projections ({kqvbg}, {p123}, {inner}) do not fit {heads} heads; the architecture's head count "
            f"contradicts the weights"
        )
    omegas_key = _block(0) + "cell.omegas"
    r = int(km.src[omegas_key].shape[0]) if omegas_key in km.src else 2
    for i in range(fields["num_layers"]):
        src, dst = _block(i) + "cell.", f"core.layers.{i}.attn."
        w = km.take(f"{src}kqvbg_proj.weight")
        km.put(f"{dst}kqvbg.weight", w)
        km.put(f"{dst}kqvbg.bias", np.zeros(w.shape[0], w.dtype))
        p = km.take(f"{src}p123_proj.weight")
        km.put(f"{dst}p.weight", p)
        km.put(f"{dst}p.bias", np.zeros(p.shape[0], p.dtype))
        K.linear(km, f"{src}out_proj.", f"{dst}proj")
        if km.has(f"{src}omegas"):
            om = km.src[f"{src}omegas"].astype(np.float64)
            if not np.allclose(om, np.linspace(-np.pi, np.pi, r), rtol=0, atol=1e-6):
                raise MettaError("AGaLiTe omegas are not linspace(-pi, pi, r); jax_tx cannot express them")
            km.drop(f"{src}omegas", "omegas (recomputable: linspace(-pi, pi, r))")
    return dict(fields, num_heads=heads, d_head=inner // heads, eta=p123 // (3 * heads), num_oscillators=r)


def _agalite_write(tsd: dict, cfg) -> dict:
    if cfg.agalite_kernel != "relu":
        raise MettaError(
            f"config agalite_kernel={cfg.agalite_kernel!r}: Cortex's AGaLiTe feature maps are relu only, "
            "so not exportable"
        )
    if cfg.agalite_gating != "gru" or not cfg.agalite_ff:
        field = f"agalite_gating={cfg.agalite_gating!r}" if cfg.agalite_gating != "gru" else "agalite_ff=False"
        raise MettaError(
            f"config {field}: Cortex's AGaLiTe blocks have a feed-forward and two GRU gates, so not exportable"
        )
    out = _cortex_common_write(tsd, cfg)
    for i in range(cfg.num_layers):
        src, dst = f"core.layers.{i}.attn.", _block(i) + "cell."
        for b in ("kqvbg.bias", "p.bias"):
            if np.any(tsd[src + b]):
                # a config gate bias (beta/gamma blocks of kqvbg only) is the likely cause: name it
                set_by = cfg.agalite_gate_bias and b == "kqvbg.bias"
                why = f" (config agalite_gate_bias={cfg.agalite_gate_bias!r} starts it there)" if set_by else ""
                raise MettaError(
                    f"{src}{b} is not zero{why}; Cortex's AGaLiTe projections have no bias, so not exportable"
                )
        out[f"{dst}kqvbg_proj.weight"], out[f"{dst}p123_proj.weight"] = tsd[f"{src}kqvbg.weight"], tsd[f"{src}p.weight"]
        out[f"{dst}out_proj.weight"], out[f"{dst}out_proj.bias"] = tsd[f"{src}proj.weight"], tsd[f"{src}proj.bias"]
        out[f"{dst}omegas"] = np.linspace(-np.pi, np.pi, cfg.num_oscillators).astype(np.float32)
    return out


# ----------------------------------------------------------------------------- pre-Cortex TransformerPolicy


def _trxl_read(km: K.KeyMap, arch, core: str) -> dict:
    enc, latent = K.import_encoder(km, auto=False)
    layers = km.count(core + "layers.{}.")
    rw, rr = km.take(core + "r_w_bias"), km.take(core + "r_r_bias")
    heads, d_head = rw.shape
    for i in range(layers):
        src, dst = f"{core}layers.{i}.", f"core.layers.{i}."
        km.rename(f"{src}attn.qkv_net.weight", f"{dst}attn.qkv.weight")
        km.rename(f"{src}attn.r_net.weight", f"{dst}attn.r_net.weight")
        km.rename(f"{src}attn.o_net.weight", f"{dst}attn.o_net.weight")
        km.put(f"{dst}attn.r_w_bias", rw)
        km.put(f"{dst}attn.r_r_bias", rr)
        K.linear(km, f"{src}attn.layer_norm.", f"{dst}norm1")
        K.linear(km, f"{src}ff.layer_norm.", f"{dst}norm2")
        K.linear(km, f"{src}ff.core.0.", f"{dst}ff.fc1")
        K.linear(km, f"{src}ff.core.3.", f"{dst}ff.fc2")
    km.drop(core + "pos_emb.inv_freq", "pos_emb.inv_freq (recomputable)")
    if km.has("input_projection.weight"):
        K.linear(km, "input_projection.", "encoder.input_proj")
    K.import_tp_heads(km)
    d = km.out["core.layers.0.norm1.weight"].shape[0]
    memory = int_field(arch, ("memory_len", "mem_len"), None, 32, "memory_len", km)
    return dict(
        enc,
        d_model=int(d),
        num_layers=int(layers),
        num_heads=int(heads),
        d_head=0 if heads * d_head == d else int(d_head),
        d_ff=int(km.out["core.layers.0.ff.fc1.weight"].shape[0]),
        memory_len=memory,
        actor_hidden=int(km.out["actor_fc.weight"].shape[0]),
        critic_hidden=int(km.out["critic_fc.weight"].shape[0]),
        token_latent_dim=0 if latent == d else latent,
    )


def _trxl_write(tsd: dict, cfg, core: str) -> dict:
    out = K.export_encoder(tsd, cfg, auto=False)
    rw, rr = tsd["core.layers.0.attn.r_w_bias"], tsd["core.layers.0.attn.r_r_bias"]
    for i in range(cfg.num_layers):
        src, dst = f"core.layers.{i}.", f"{core}layers.{i}."
        if not (np.array_equal(tsd[f"{src}attn.r_w_bias"], rw) and np.array_equal(tsd[f"{src}attn.r_r_bias"], rr)):
            raise MettaError("the layers' r_w_bias/r_r_bias differ; Metta's TrXL shares one pair, so not exportable")
        for m, t in (("attn.qkv_net", "attn.qkv"), ("attn.r_net", "attn.r_net"), ("attn.o_net", "attn.o_net")):
            out[f"{dst}{m}.weight"] = tsd[f"{src}{t}.weight"]
        for m, t in (
            ("attn.layer_norm", "norm1"),
            ("ff.layer_norm", "norm2"),
            ("ff.core.0", "ff.fc1"),
            ("ff.core.3", "ff.fc2"),
        ):
            out[f"{dst}{m}.weight"], out[f"{dst}{m}.bias"] = tsd[f"{src}{t}.weight"], tsd[f"{src}{t}.bias"]
    out[f"{core}r_w_bias"], out[f"{core}r_r_bias"] = rw, rr
    inv = 1.0 / (10000.0 ** (np.arange(0, cfg.d_model, 2, dtype=np.float64) / cfg.d_model))
    out[f"{core}pos_emb.inv_freq"] = inv.astype(np.float32)
    if "encoder.input_proj.weight" in tsd:
        out["input_projection.weight"], out["input_projection.bias"] = (
            tsd[f"encoder.input_proj.{p}"] for p in ("weight", "bias")
        )
    out.update(K.export_tp_heads(tsd))
    return out
