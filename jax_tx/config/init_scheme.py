"""Parameter initialisation schemes (`PolicyConfig.init`), read by both twins (no jax, no torch).

default     each layer keeps its own initialiser (the behaviour before the option existed).
orthogonal  the official AGaLiTe code's scheme: every Dense / Linear kernel W is orthogonal with gain g,
            i.e. W^T W = g^2 I on its orthogonal side (W W^T = g^2 I when W has more columns than rows),
            and every Dense bias is 0 (but the AGaLiTe beta/gamma blocks that `agalite_gate_bias` sets, under
            either scheme). The gain of a layer depends only on its name:

    g = sqrt(2)  every hidden layer: the observation encoder, attention projections (the output projection
                 too), feed-forward layers, the GRU gate matrices W_r U_r W_z U_z W_g U_g (and the fused gate),
                 the head hidden layers, the history tokens' projections.
                 Source: subho406/agalite src_pure/models/agalite.py, where AttentionORLiTLayer's
                 linear_kqvbetagammas, linear_p1p2p3 and project, the layer-0 emb_layer, both FFN Dense and
                 all six GRUGatingUnit matrices use orthogonal(sqrt 2) and constant(0) biases
                 (../shared/reference/transformers_and_conversion.md section 4.3; metta_torch_stack_summary.md
                 "Standard layer ... Ported from JAX": project orthogonal sqrt2, GRU matrices sqrt2), and the
                 issue's "every dense layer orthogonally with gain sqrt(2)".
    g = 0.01     the actor logits head (actor_out; slot_query, the slot variant's bilinear logit query).
    g = 1.0      the critic value head (critic_out).
                 Source: subho406/agalite src_pure/purejaxrl/ppo_rnn.py ActorCriticRNN (the PureJaxRL heads:
                 logits orthogonal(0.01), value orthogonal(1.0)); Metta's heads agree
                 (metta_torch_stack.md: logits gain 0.01, value gain 1.0).

Deliberate differences from other sources: two of Metta's AGaLiTe ports give the attention output
projection gain 1 (metta_torch_stack.md: the main-branch layer's "W_o orthogonal gain 1" and the fast layer's
"project orthogonal(1.0)"), while the official code (and Metta's Cortex cell) use sqrt(2), which is what
this scheme follows. The official PureJaxRL heads' hidden Dense layers use
orthogonal(2); here they get sqrt(2), as the issue states.
Not touched by either scheme: LayerNorm scale/bias, the gate bias b_g (`gate_bias`), embeddings, learned
tokens and latents, r_w_bias / r_r_bias, and the LSTM / GRU cell weights and biases (those are not Dense
layers), so `lstm_forget_bias` and `gru_update_bias` set their gate biases under either scheme.
"""

from __future__ import annotations

import math

INITS = ("default", "orthogonal")

HIDDEN_GAIN = math.sqrt(2.0)
HEAD_GAINS = {"actor_out": 0.01, "slot_query": 0.01, "critic_out": 1.0}
"""Layer name -> orthogonal gain for the heads; every other Dense layer gets HIDDEN_GAIN."""


def orthogonal_gain(layer_name: str) -> float:
    """Gain g of the Dense layer called `layer_name` under init="orthogonal" (module docstring)."""
    return HEAD_GAINS.get(layer_name, HIDDEN_GAIN)
