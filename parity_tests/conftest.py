"""Parity runs pin float32 matmuls to full precision on both sides (JAX would use TF32 on
recent GPUs; on CPU this changes nothing)."""

import jax
import torch

jax.config.update("jax_default_matmul_precision", "highest")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
