"""Architecture strings written on export, in the call syntax of Metta's `PolicyArchitecture.to_spec()`.

The layout (a policy config class path called with a `components` list of dicts, each naming its
`class_path`, its component `name` and its sizes) follows metta_interop.md sections 2 and 4.8; the
field names beyond those the facts record are our best reading and are not checked against Metta's
loader here. An import of a Metta checkpoint keeps the original string and writes it back verbatim.
"""

from __future__ import annotations

from jax_tx.config import PolicyConfig
from jax_tx.io.metta.arch import format_architecture

POLICY_CLASS = {
    "metta_cortex_xl": "metta.agent.policies.trxl.TRXLConfig",
    "metta_cortex_agalite": "metta.agent.policies.agalite.AGaLiTeConfig",
    "metta_trxl": "metta.agent.policies.transformer.TransformerPolicyConfig",
    "metta_trxl_nvidia": "metta.agent.policies.transformer.TransformerPolicyConfig",
    "metta_sliding": "metta.agent.policies.vit_sliding_trans.ViTSlidingTransConfig",
}
COMPONENTS = "metta.agent.components."


def _encoder(cfg: PolicyConfig) -> list[dict]:
    return [
        dict(class_path=f"{COMPONENTS}obs_shim.ObsShimTokensConfig", name="obs_shim_tokens", max_tokens=48),
        dict(
            class_path=f"{COMPONENTS}obs_tokenizers.ObsAttrEmbedFourierConfig",
            name="obs_attr_embed_fourier",
            attr_embed_dim=cfg.token_attr_embed_dim,
            num_freqs=cfg.token_fourier_freqs,
        ),
        dict(
            class_path=f"{COMPONENTS}obs_enc.ObsPerceiverLatentConfig",
            name="obs_perceiver_latent",
            latent_dim=cfg.latent_dim,
            num_latents=cfg.token_num_latents,
            num_heads=cfg.token_num_heads,
            num_layers=cfg.token_num_layers,
            mlp_ratio=cfg.token_mlp_ratio,
        ),
    ]


def _mlp(name: str, d_in: int, hidden: int, d_out: int) -> dict:
    return dict(
        class_path=f"{COMPONENTS}misc.MLPConfig",
        name=name,
        in_features=d_in,
        hidden_features=[hidden],
        out_features=d_out,
    )


def _cortex_cell(cfg: PolicyConfig, plan: str) -> dict:
    if plan == "metta_cortex_xl":
        return dict(class_path="cortex.config.XLCellConfig", num_heads=cfg.num_heads, mem_len=cfg.memory_len)
    return dict(
        class_path="cortex.config.AGaLiTeCellConfig",
        num_heads=cfg.num_heads,
        eta=cfg.eta,
        r=cfg.num_oscillators,
    )


def architecture_for(cfg: PolicyConfig, plan: str) -> str:
    """The call-syntax architecture string of a Metta-compatible config."""
    d = cfg.d_model
    comps = _encoder(cfg)
    if plan.startswith("metta_cortex"):
        block = dict(class_path="cortex.config.PostUpGatedBlockConfig", cell=_cortex_cell(cfg, plan), d_inner=cfg.d_ff)
        stack = dict(class_path="cortex.config.CortexStackConfig", d_hidden=d, num_layers=cfg.num_layers, block=block)
        comps.append(dict(class_path=f"{COMPONENTS}cortex.CortexTDConfig", name="cortex", d_hidden=d, stack_cfg=stack))
        comps += [
            _mlp("critic", d, cfg.critic_hidden, 1),
            _mlp("gtd_aux", d, cfg.critic_hidden, 1),
            _mlp("actor_mlp", d, cfg.actor_hidden, cfg.actor_hidden),
            dict(class_path=f"{COMPONENTS}actor.ActorHeadConfig", name="actor_head", input_dim=cfg.actor_hidden),
        ]
    elif plan == "metta_sliding":
        comps.append(
            dict(
                class_path=f"{COMPONENTS}sliding_transformer.SlidingTransformerConfig",
                name="sliding_transformer",
                hidden_size=d,
                num_layers=cfg.num_layers,
                num_heads=cfg.num_heads,
                max_cache_size=cfg.max_cache_size,
            )
        )
        comps += [
            _mlp("critic", d, cfg.critic_hidden, 1),
            dict(class_path=f"{COMPONENTS}actor.ActorHeadConfig", name="actor_head", input_dim=d),
        ]
    else:  # TransformerPolicy: one dataclass of backbone fields
        backbone = dict(hidden_size=d, num_layers=cfg.num_layers, n_heads=cfg.num_heads, d_ff=cfg.d_ff)
        backbone.update(memory_len=cfg.memory_len, pre_lnorm=cfg.pre_norm)
        return format_architecture({"class_path": POLICY_CLASS[plan], "transformer": backbone, "components": comps})
    return format_architecture({"class_path": POLICY_CLASS[plan], "components": comps})
