"""Synthetic Metta checkpoints built from torch_ref twins, with Metta's key names, prefixes and layouts.

Written from the facts in ../shared/reference/metta_interop.md (sections 2, 4.1-4.9) and metta_torch_stack.md
(section 11), independently of jax_tx.io.metta: the tests check that module's maps against these.

    cfg = small_config("metta_cortex_xl")
    twin_sd = quantized_twin(cfg)                  # torch_ref state dict, values on a 2^-12 grid
    metta_sd, arch = METTA_LAYOUT[name](twin_sd, cfg, rng)   # Metta keys, Metta-only tensors added
    write_dir(path, metta_sd, arch) / write_mpt(path, ...) / write_pt(path, metta_sd)
"""

from __future__ import annotations

import json
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save, save_file

import torch_ref
from jax_tx import config

AUTO = "_sequential_network.module."
SMALL = dict(
    d_model=16,
    num_layers=2,
    d_ff=24,
    actor_hidden=16,
    critic_hidden=12,
    token_num_latents=4,
    token_num_layers=1,
    token_num_heads=2,
    token_attr_embed_dim=4,
    token_fourier_freqs=2,
)
SIZES = {
    "metta_cortex_xl": dict(SMALL, num_heads=2, memory_len=5),
    "metta_cortex_agalite": dict(SMALL, num_heads=2, d_head=8, eta=2, num_oscillators=2),
    "metta_trxl": dict(SMALL, num_heads=2, memory_len=5, token_num_layers=1),
    "metta_trxl_nvidia": dict(SMALL, num_layers=1, num_heads=2, memory_len=5),
    "metta_sliding": dict(SMALL, num_heads=2, d_ff=32, max_cache_size=12, token_latent_dim=8, actor_hidden=32),
}


def small_config(name: str, dtype: str = "float32", num_actions: int = 5) -> config.PolicyConfig:
    return config.preset(name, obs_dim=200, num_actions=num_actions, dtype=dtype, **SIZES[name])


def quantized_twin(cfg, seed: int = 0) -> OrderedDict:
    """A torch_ref state dict with random values on a 2^-12 grid (sums and differences stay exact)."""
    torch.manual_seed(seed)
    sd = torch_ref.make_policy(cfg).state_dict()
    out = OrderedDict()
    for k, v in sd.items():
        noise = torch.randn_like(v) * 0.3
        out[k] = torch.round(noise * 4096) / 4096
    return out


def _lin(out, metta: str, sd, key: str, bias: bool = True):
    out[metta + "weight"] = sd[key + ".weight"]
    if bias:
        out[metta + "bias"] = sd[key + ".bias"]


def _encoder(sd, cfg, auto: bool) -> OrderedDict:
    shim, tok, enc = (
        (f"{AUTO}obs_shim_tokens.func.", f"{AUTO}obs_attr_embed_fourier.func.", f"{AUTO}obs_perceiver_latent.func.")
        if auto
        else ("obs_shim.", "obs_tokenizer.", "obs_encoder.")
    )
    out = OrderedDict()
    out[shim + "token_pad_striper.feature_id_remap"] = torch.arange(256, dtype=torch.uint8)
    out[shim + "attr_val_normer._norm_factors"] = torch.ones(256, dtype=sd["encoder.latents"].dtype)
    out[tok + "_attr_embeds.weight"] = sd["encoder.attr_embeds.weight"]
    out[tok + "frequencies"] = 2.0 ** torch.arange(cfg.token_fourier_freqs, dtype=torch.float32)
    for k, v in sd.items():
        if k.startswith("encoder.") and k != "encoder.attr_embeds.weight" and not k.startswith("encoder.input_proj"):
            out[enc + k[len("encoder.") :]] = v
    return out


def _mlp(out, name, sd, first, second):
    _lin(out, f"{AUTO}{name}.func.network.module.0.module.", sd, first)
    _lin(out, f"{AUTO}{name}.func.network.module.2.module.", sd, second)


def _cortex_tail(out, sd):
    out[f"{AUTO}cortex.func.stack.norm.weight"] = sd["final_norm.weight"]
    out[f"{AUTO}cortex.func.stack.norm.bias"] = sd["final_norm.bias"]
    _mlp(out, "critic", sd, "critic_fc", "critic_out")
    _mlp(out, "gtd_aux", sd, "critic_fc", "critic_out")
    _mlp(out, "actor_mlp", sd, "actor_fc", "actor_fc2")
    _lin(out, f"{AUTO}actor_head.func._module.module.", sd, "actor_out")


def _cortex_block(out, sd, i):
    src, dst = f"core.layers.{i}.", f"{AUTO}cortex.func.stack.blocks.{i}.experts.0."
    out[dst + "norm1.weight"], out[dst + "norm2.weight"] = sd[src + "norm1.weight"], sd[src + "norm2.weight"]
    _lin(out, dst + "ffn_in.", sd, src + "ff.fc1")
    _lin(out, dst + "ffn_out.", sd, src + "ff.fc2")
    for g in ("gate1", "gate2"):
        for m in ("Wr", "Ur", "Wz", "Uz", "Wg", "Ug"):
            out[f"{dst}{g}.{m}.weight"] = sd[f"{src}{g}.{m[0].lower()}_{m[1].lower()}.weight"]
        out[f"{dst}{g}.bg"] = sd[f"{src}{g}.bg"]
    return src, dst


def cortex_xl(sd, cfg, rng, exact_biases: bool = True):
    """Cortex XL with separate q/k/v/o projections and biases chosen so the policy equals the twin:
    u = r_w - b_q, v = r_r - b_q, b_o = o_bias - W_o b_v (b_k is free: it cancels in the softmax)."""
    out = _encoder(sd, cfg, auto=True)
    n, h = cfg.num_heads, cfg.head_dim
    for i in range(cfg.num_layers):
        src, dst = _cortex_block(out, sd, i)
        a = src + "attn."
        wq, wk, wv = sd[a + "qkv.weight"].chunk(3, dim=0)
        bq = torch.round(torch.as_tensor(rng.normal(size=n * h) * 64)) / 256
        bk = torch.as_tensor(rng.normal(size=n * h))
        bv = torch.zeros(n * h)
        bv[0] = 0.5
        bq, bk, bv = (t.to(wq.dtype) for t in (bq, bk, bv))
        for c, w, b in (("q", wq, bq), ("k", wk, bk), ("v", wv, bv)):
            out[f"{dst}cell.{c}_proj.weight"], out[f"{dst}cell.{c}_proj.bias"] = w, b
        wo = sd[a + "o_net.weight"]
        out[f"{dst}cell.o_proj.weight"], out[f"{dst}cell.o_proj.bias"] = wo, sd[a + "o_net.bias"] - wo @ bv
        out[f"{dst}cell.r_proj.weight"] = sd[a + "r_net.weight"]
        out[f"{dst}cell.u"] = sd[a + "r_w_bias"] - bq.view(n, h)
        out[f"{dst}cell.v"] = sd[a + "r_r_bias"] - bq.view(n, h)
    _cortex_tail(out, sd)
    cell = dict(class_path="cortex.config.XLCellConfig", num_heads=n, mem_len=cfg.memory_len)
    return out, _arch("metta.agent.policies.trxl.TRXLConfig", cfg, cell)


def cortex_agalite(sd, cfg, rng):
    out = _encoder(sd, cfg, auto=True)
    for i in range(cfg.num_layers):
        src, dst = _cortex_block(out, sd, i)
        out[dst + "cell.kqvbg_proj.weight"] = sd[src + "attn.kqvbg.weight"]
        out[dst + "cell.p123_proj.weight"] = sd[src + "attn.p.weight"]
        _lin(out, dst + "cell.out_proj.", sd, src + "attn.proj")
        out[dst + "cell.omegas"] = torch.linspace(-np.pi, np.pi, cfg.num_oscillators)
    _cortex_tail(out, sd)
    cell = dict(class_path="cortex.config.AGaLiTeCellConfig", num_heads=cfg.num_heads, eta=cfg.eta, r=2)
    return out, _arch("metta.agent.policies.agalite.AGaLiTeConfig", cfg, cell)


def trxl(sd, cfg, rng, nvidia: bool = False):
    """TransformerPolicy TrXL: one r_w_bias/r_r_bias shared by all layers (the twin's layer 0 copied to all)."""
    out = _encoder(sd, cfg, auto=False)
    core = "transformer_module.core." if nvidia else "transformer_module."
    out[core + "pos_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, cfg.d_model, 2.0) / cfg.d_model))
    out[core + "r_w_bias"] = sd["core.layers.0.attn.r_w_bias"]
    out[core + "r_r_bias"] = sd["core.layers.0.attn.r_r_bias"]
    for i in range(cfg.num_layers):
        src, dst = f"core.layers.{i}.", f"{core}layers.{i}."
        for m, t in (("qkv_net", "qkv"), ("r_net", "r_net"), ("o_net", "o_net")):
            out[f"{dst}attn.{m}.weight"] = sd[f"{src}attn.{t}.weight"]
        _lin(out, dst + "attn.layer_norm.", sd, src + "norm1")
        _lin(out, dst + "ff.layer_norm.", sd, src + "norm2")
        _lin(out, dst + "ff.core.0.", sd, src + "ff.fc1")
        _lin(out, dst + "ff.core.3.", sd, src + "ff.fc2")
    _lin(out, "actor_head.module.0.", sd, "actor_fc")
    _lin(out, "logits_head.module.", sd, "actor_out")
    _lin(out, "critic_head.module.0.", sd, "critic_fc")
    _lin(out, "value_head.module.", sd, "critic_out")
    backbone = dict(hidden_size=cfg.d_model, num_layers=cfg.num_layers, n_heads=cfg.num_heads)
    backbone.update(memory_len=cfg.memory_len)
    policy = "metta.agent.policies.transformer.TransformerPolicyConfig"
    text = f"{policy}(transformer={backbone!r}, components={[_perceiver(cfg)]!r})"
    return out, text


def tie_shared_biases(sd, cfg):
    """Metta's TrXL shares r_w_bias/r_r_bias: give every twin layer layer 0's values."""
    for i in range(1, cfg.num_layers):
        for b in ("r_w_bias", "r_r_bias"):
            sd[f"core.layers.{i}.attn.{b}"] = sd[f"core.layers.0.attn.{b}"].clone()
    return sd


def linear_actor(sd, cfg):
    """ViT-sliding's actor is Linear(D -> A): the twin's [I; -I] / [W, -W] form; action columns a * w."""
    d = cfg.d_model
    eye = torch.eye(d, dtype=sd["actor_fc.weight"].dtype)
    sd["actor_fc.weight"], sd["actor_fc.bias"] = torch.cat([eye, -eye]), torch.zeros(2 * d, dtype=eye.dtype)
    w = sd["actor_out.weight"][:, :d]
    sd["actor_out.weight"] = torch.cat([w, -w], dim=1)
    col = sd["core.action_proj.weight"][:, 1]
    sd["core.action_proj.weight"] = col[:, None] * torch.arange(cfg.num_actions, dtype=col.dtype)[None, :]
    sd["core.reward_proj.weight"] = torch.zeros_like(sd["core.reward_proj.weight"])
    return sd


def sliding(sd, cfg, rng, envs: int = 3):
    out = _encoder(sd, cfg, auto=True)
    s = f"{AUTO}sliding_transformer.func."
    for i in range(cfg.num_layers):
        src, dst = f"core.layers.{i}.", f"{s}blocks.{i}."
        for c in ("q", "k", "v", "out"):
            _lin(out, f"{dst}{c}_proj.", sd, f"{src}attn.{c}_proj")
        _lin(out, dst + "norm1.", sd, src + "norm1")
        _lin(out, dst + "norm2.", sd, src + "norm2")
        _lin(out, dst + "ffn.0.", sd, src + "ff.fc1")
        _lin(out, dst + "ffn.2.", sd, src + "ff.fc2")
    out[s + "cls_token"] = sd["core.cls_token"].view(1, 1, -1)
    dtype = sd["core.cls_token"].dtype
    out[s + "reward_proj.weight"] = torch.as_tensor(rng.normal(size=(cfg.d_model, 1))).to(dtype)  # never trained
    out[s + "reward_proj.bias"] = sd["core.reward_proj.bias"]
    _lin(out, s + "dones_truncateds_proj.", sd, "core.reset_proj")
    out[s + "last_action_proj.weight"] = sd["core.action_proj.weight"][:, 1:2]
    out[s + "last_action_proj.bias"] = sd["core.action_proj.bias"]
    _lin(out, s + "final_norm.", sd, "core.final_norm")
    _lin(out, s + "input_proj.", sd, "encoder.input_proj")
    shape = (envs, cfg.num_layers, cfg.num_heads, cfg.max_cache_size, cfg.head_dim)
    out[s + "k_cache"], out[s + "v_cache"] = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
    out[s + "position_counter"] = torch.arange(envs, dtype=torch.long)
    _mlp(out, "critic", sd, "critic_fc", "critic_out")
    out[f"{AUTO}actor_head.func._module.module.weight"] = sd["actor_out.weight"][:, : cfg.d_model]
    out[f"{AUTO}actor_head.func._module.module.bias"] = sd["actor_out.bias"]
    comp = dict(class_path="metta.agent.components.sliding_transformer.SlidingTransformerConfig")
    comp.update(name="sliding_transformer", hidden_size=cfg.d_model, num_heads=cfg.num_heads)
    text = _arch_text("metta.agent.policies.vit_sliding_trans.ViTSlidingTransConfig", cfg, [comp])
    return out, text


def _perceiver(cfg):
    return dict(
        class_path="metta.agent.components.obs_enc.ObsPerceiverLatentConfig",
        name="obs_perceiver_latent",
        latent_dim=cfg.latent_dim,
        num_latents=cfg.token_num_latents,
        num_heads=cfg.token_num_heads,
        num_layers=cfg.token_num_layers,
    )


def _arch_text(policy_class, cfg, comps):
    parts = [_perceiver(cfg)] + comps
    return f"{policy_class}(components={parts!r})"


def _arch(policy_class, cfg, cell):
    stack = dict(class_path="cortex.config.CortexStackConfig", d_hidden=cfg.d_model, block=dict(cell=cell))
    comp = dict(class_path="metta.agent.components.cortex.CortexTDConfig", name="cortex", stack_cfg=stack)
    return _arch_text(policy_class, cfg, [comp])


# ----------------------------------------------------------------------------- the three file formats


def write_dir(path: Path, state: dict, arch: str) -> Path:
    path.mkdir(parents=True)
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path / "weights.safetensors"))
    spec = {"class_path": "metta.agent.policy.CheckpointPolicy", "init_kwargs": {"architecture_spec": arch}}
    (path / "policy_spec.json").write_text(json.dumps(spec, indent=2))
    return path


def write_mpt(path: Path, state: dict, arch: str, weights: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        if weights:
            z.writestr("weights.safetensors", save({k: v.contiguous().clone() for k, v in state.items()}))
        z.writestr("modelarchitecture.txt", arch)
    return path


def module_tree(state: dict, buffers=("feature_id_remap", "_norm_factors", "frequencies", "inv_freq", "omegas")):
    """An nn.Module tree whose state_dict() is `state` (same keys and order); buffers by name."""
    root = torch.nn.Module()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        m = root
        for p in parents:
            if p not in m._modules:
                m.add_module(p, torch.nn.Module())
            m = m._modules[p]
        is_buffer = leaf in buffers or leaf.endswith(("cache", "counter")) or not value.is_floating_point()
        if is_buffer:
            m.register_buffer(leaf, value.clone())
        else:
            m.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=True))
    return root


def write_pt(path: Path, state: dict, arch: str | None = None) -> Path:
    """torch.save of the whole policy object, its root class at Metta's path (a module made for the save)."""
    mod = types.ModuleType("metta.agent.metta_agent")
    cls = type("MettaAgent", (torch.nn.Module,), {"__module__": mod.__name__})
    mod.MettaAgent = cls
    names = ["metta", "metta.agent", "metta.agent.metta_agent"]
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules.update({n: types.ModuleType(n) for n in names[:2]})
    sys.modules[names[2]] = mod
    try:
        tree = module_tree(state)
        agent = cls()
        agent.__dict__.update({k: v for k, v in tree.__dict__.items() if k.startswith("_")})
        if arch is not None:  # the pickled object carries its config (here: the architecture as plain data)
            import ast

            call = ast.parse(arch, mode="eval").body
            agent.config = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        torch.save(agent, path)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    return path


METTA_LAYOUT = {
    "metta_cortex_xl": cortex_xl,
    "metta_cortex_agalite": cortex_agalite,
    "metta_trxl": trxl,
    "metta_trxl_nvidia": lambda sd, cfg, rng: trxl(sd, cfg, rng, nvidia=True),
    "metta_sliding": sliding,
}


def fixture(name: str, seed: int = 0, dtype: str = "float32"):
    """(cfg, twin state dict, Metta state dict, architecture string) for Metta policy `name`."""
    cfg = small_config(name, dtype)
    sd = quantized_twin(cfg, seed)
    if name == "metta_cortex_agalite":
        for k in sd:
            if k.endswith(("kqvbg.bias", "attn.p.bias")):
                sd[k] = torch.zeros_like(sd[k])
    if name in ("metta_trxl", "metta_trxl_nvidia"):
        sd = tie_shared_biases(sd, cfg)
    if name == "metta_sliding":
        sd = linear_actor(sd, cfg)
    metta, arch = METTA_LAYOUT[name](sd, cfg, np.random.default_rng(seed))
    return cfg, sd, metta, arch
