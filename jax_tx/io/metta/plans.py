"""Which Metta policy a state dict holds, and the ViT-sliding map (metta_interop.md sections 4.2-4.9).

plan = detect(keys)     # a Plan, or MettaError naming why the model is refused or unknown
"""

from __future__ import annotations

from functools import partial

import numpy as np

from jax_tx.io.metta import keymaps as K
from jax_tx.io.metta import policies as P
from jax_tx.io.metta.arch import find_field
from jax_tx.io.metta.errors import MettaError

SLIDING = P.SLIDING
RUNTIME_BUFFERS = ("k_cache", "v_cache", "k_cache_training", "v_cache_training", "position_counter")


def _sliding_read(km: K.KeyMap, arch) -> dict:
    enc, latent = K.import_encoder(km, auto=True)
    layers = km.count(SLIDING + "blocks.{}.")
    for i in range(layers):
        src, dst = f"{SLIDING}blocks.{i}.", f"core.layers.{i}."
        for c in ("q", "k", "v", "out"):
            K.linear(km, f"{src}{c}_proj.", f"{dst}attn.{c}_proj")
        K.linear(km, f"{src}norm1.", f"{dst}norm1")
        K.linear(km, f"{src}norm2.", f"{dst}norm2")
        K.linear(km, f"{src}ffn.0.", f"{dst}ff.fc1")
        K.linear(km, f"{src}ffn.2.", f"{dst}ff.fc2")
    cls = km.take(SLIDING + "cls_token")
    km.put("core.cls_token", cls.reshape(-1))
    K.linear(km, SLIDING + "reward_proj.", "core.reward_proj")
    km.out["core.reward_proj.weight"] = np.zeros_like(km.out["core.reward_proj.weight"])
    km.notes.append(
        "set the reward token's weight to 0: Metta's sliding policy reads td['reward'] but its trainer writes "
        "'rewards', so it always saw reward 0 (the original weight is kept for export)"
    )
    K.linear(km, SLIDING + "dones_truncateds_proj.", "core.reset_proj")
    K.linear(km, SLIDING + "final_norm.", "core.final_norm")
    K.linear(km, SLIDING + "input_proj.", "encoder.input_proj")
    K.import_linear_actor(km)
    K.import_relu_critic(km)
    actions = km.out["actor_out.weight"].shape[0]
    w = km.take(SLIDING + "last_action_proj.weight")[:, 0]
    km.put("core.action_proj.weight", w[:, None] * np.arange(actions, dtype=w.dtype)[None, :])
    km.rename(SLIDING + "last_action_proj.bias", "core.action_proj.bias")
    heads, cache = None, None
    cache_key = SLIDING + "k_cache"
    if km.has(cache_key) and km.src[cache_key].ndim == 5:
        heads, cache = int(km.src[cache_key].shape[2]), int(km.src[cache_key].shape[3])
    found = [km.drop(SLIDING + b, "runtime state (see above)") or b for b in RUNTIME_BUFFERS if km.has(SLIDING + b)]
    if found:
        km.notes.append(
            f"dropped the sliding policy's runtime state saved with the weights ({', '.join(found)}: per-env KV "
            f"cache and position counter); jax_tx starts from initial_memory"
        )
    if heads is None:
        heads = P.int_field(arch, ("num_heads", "n_heads"), "slidingtransformer", 1, "sliding num_heads", km)
    if cache is None:
        cache = P.int_field(arch, ("max_cache_size",), "slidingtransformer", 80, "max_cache_size", km)
    d = int(cls.size)
    return dict(
        enc,
        d_model=d,
        num_layers=int(layers),
        num_heads=heads,
        d_ff=int(km.out["core.layers.0.ff.fc1.weight"].shape[0]),
        max_cache_size=cache,
        actor_hidden=2 * d,
        critic_hidden=int(km.out["critic_fc.weight"].shape[0]),
        token_latent_dim=0 if latent == d else latent,
    )


def _sliding_write(tsd: dict, cfg) -> dict:
    if cfg.sliding_positions != "sinusoid":
        raise MettaError(
            f"config sliding_positions={cfg.sliding_positions!r}: Metta's sliding transformer adds sinusoid "
            "positions to every token, so not exportable"
        )
    out = K.export_encoder(tsd, cfg, auto=True)
    for i in range(cfg.num_layers):
        src, dst = f"core.layers.{i}.", f"{SLIDING}blocks.{i}."
        pairs = [(f"attn.{c}_proj", f"{c}_proj") for c in ("q", "k", "v", "out")]
        pairs += [("norm1", "norm1"), ("norm2", "norm2"), ("ff.fc1", "ffn.0"), ("ff.fc2", "ffn.2")]
        for t, m in pairs:
            out[f"{dst}{m}.weight"], out[f"{dst}{m}.bias"] = tsd[f"{src}{t}.weight"], tsd[f"{src}{t}.bias"]
    out[SLIDING + "cls_token"] = tsd["core.cls_token"].reshape(1, 1, -1)
    for t, m in (("reward_proj", "reward_proj"), ("reset_proj", "dones_truncateds_proj"), ("final_norm", "final_norm")):
        out[f"{SLIDING}{m}.weight"], out[f"{SLIDING}{m}.bias"] = tsd[f"core.{t}.weight"], tsd[f"core.{t}.bias"]
    out[SLIDING + "input_proj.weight"] = tsd["encoder.input_proj.weight"]
    out[SLIDING + "input_proj.bias"] = tsd["encoder.input_proj.bias"]
    cols = tsd["core.action_proj.weight"]
    w = cols[:, 1] if cols.shape[1] > 1 else np.zeros(cols.shape[0], cols.dtype)
    if not np.array_equal(cols, w[:, None] * np.arange(cols.shape[1], dtype=cols.dtype)[None, :]):
        raise MettaError(
            "core.action_proj columns are not a * w; Metta's sliding policy feeds the action index as a scalar"
        )
    out[SLIDING + "last_action_proj.weight"], out[SLIDING + "last_action_proj.bias"] = (
        w[:, None],
        tsd["core.action_proj.bias"],
    )
    out.update(K.export_linear_actor(tsd))
    out.update(K.export_relu_critic(tsd))
    return out


CORTEX_CAVEAT = (
    "exact (float64 ~1e-15; the q/k/v biases are folded) when reset[:, t] is Metta's done[t-1]; Cortex computes "
    "its softmax and sinusoid in float32 and runs bf16 on GPU, so expect ~1e-7 (CPU float32) vs what Metta printed"
)
TP_CAVEAT = (
    "exact at batch 1 (memory_holds='outputs', memory_init='zeros'); Metta's own rollout at batch > 1 mixes "
    "environments through its rel-shift on [B, H, T, K], which jax_tx does not reproduce; Metta truncates to "
    "max_tokens (48) valid tokens per step, jax_tx attends all obs_dim tokens"
)
SLIDING_CAVEAT = (
    "exact without resets; after a reset Metta's position counter lags a step and it keeps the previous action "
    "token, so outputs at a reset step differ; Metta truncates to max_tokens (48) valid tokens per step"
)

PLANS = {
    "metta_cortex_xl": P.Plan("metta_cortex_xl", True, f"{P.CORTEX}blocks.", P._xl_read, P._xl_write, CORTEX_CAVEAT),
    "metta_cortex_agalite": P.Plan(
        "metta_cortex_agalite", True, f"{P.CORTEX}blocks.", P._agalite_read, P._agalite_write, CORTEX_CAVEAT
    ),
    "metta_trxl": P.Plan(
        "metta_trxl",
        False,
        "transformer_module.r_w_bias",
        partial(P._trxl_read, core="transformer_module."),
        partial(P._trxl_write, core="transformer_module."),
        TP_CAVEAT,
    ),
    "metta_trxl_nvidia": P.Plan(
        "metta_trxl_nvidia",
        False,
        "transformer_module.core.r_w_bias",
        partial(P._trxl_read, core="transformer_module.core."),
        partial(P._trxl_write, core="transformer_module.core."),
        TP_CAVEAT,
    ),
    "metta_sliding": P.Plan("metta_sliding", True, SLIDING, _sliding_read, _sliding_write, SLIDING_CAVEAT),
}

REFUSED = (
    (
        ("transformer_module.layers.0.gate1.gate_proj.", "transformer_module.positional_encoding."),
        "Metta's GTrXL is a different function from jax_tx's gtrxl (absolute positions restarting at 0 on every "
        "call, memory rows re-processed by every layer at every step, no relative attention); not imported",
    ),
    (
        (f"{K.AUTO}agalite_transformer.",),
        "Metta's pre-Cortex AGaLiTe is a different function from jax_tx's agalite (fused GRU gates, ELU+1 kernel, "
        "GELU sublayers, a double sigmoid on gamma, a bilinear actor); not imported",
    ),
    (
        ("action_embeddings.", f"{K.AUTO}action_embedding.", "actor_query.", "actor_key."),
        "this checkpoint has Metta's bilinear action-embedding actor (before 2025-10-08), which jax_tx's heads "
        "cannot express; not imported",
    ),
    (
        ("reward_proj.", "last_action_proj."),
        "this TransformerPolicy has aux tokens, whose rollout crashes in Metta with more than one action; not imported",
    ),
)


def detect(keys) -> P.Plan:
    """The plan for these (normalised) Metta keys; refusals and unknown models raise MettaError."""
    keys = list(keys)
    for prefixes, why in REFUSED:
        if any(k.startswith(prefixes) for k in keys):
            raise MettaError(why)
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has(P.CORTEX):
        if has(f"{P.CORTEX}blocks.0.experts.0.cell.u") or has(f"{P.CORTEX}blocks.0.experts.0.cell.q_proj."):
            return PLANS["metta_cortex_xl"]
        if has(f"{P.CORTEX}blocks.0.experts.0.cell.kqvbg_proj."):
            return PLANS["metta_cortex_agalite"]
        raise MettaError("this Cortex stack has cells other than XL and AGaLiTe (or several experts); unsupported")
    if has("transformer_module.core.r_w_bias"):
        return PLANS["metta_trxl_nvidia"]
    if has("transformer_module.r_w_bias"):
        return PLANS["metta_trxl"]
    if has(SLIDING):
        return PLANS["metta_sliding"]
    sample = sorted(keys)[:4]
    raise MettaError(
        f"the keys ({sample} ...) are not those of a Metta policy jax_tx imports (Cortex XL / AGaLiTe, TrXL, "
        f"NVIDIA TrXL, ViT-sliding); unsupported model"
    )


def check_arch(arch, cfg) -> None:
    """Refuse an architecture whose sizes contradict the weights (only fields it states are compared)."""
    if arch is None:
        return
    checks = (
        (("d_hidden", "hidden_size", "latent_size"), None, cfg.d_model, "hidden size"),
        (("latent_dim",), "perceiver", cfg.latent_dim, "Perceiver latent_dim"),
        (("num_latents",), "perceiver", cfg.token_num_latents, "Perceiver num_latents"),
        (("attr_embed_dim",), "fourier", cfg.token_attr_embed_dim, "attr_embed_dim"),
        (("num_freqs",), "fourier", cfg.token_fourier_freqs, "num_freqs"),
    )
    if cfg.variant == "gtrxl":
        checks += ((("num_heads", "n_heads"), "xlcell", cfg.num_heads, "XL num_heads"),)
    if cfg.variant in ("trxl", "trxl_nvidia"):  # TransformerPolicy's backbone dict names its heads n_heads
        checks += ((("n_heads",), None, cfg.num_heads, "n_heads"),)
    for names, component, value, what in checks:
        stated = find_field(arch, names, component)
        if stated is not None and stated != value:
            raise MettaError(
                f"the architecture says {what} = {stated!r} but the weights have {value}; the spec contradicts the "
                f"weights (mixed-up files?)"
            )
