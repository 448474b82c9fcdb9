"""Metta's own checkpoints, read and written without Metta installed (`jax-tx convert`, see README "From Metta").

errors.py     MettaError, UnsafePickleError
unpickle.py   the allowlisting unpickler and the state dict rebuilt from a pickled module tree
arch.py       architecture strings as data (ast), and back
readers.py    the .pt pickle, the .mpt zip, the checkpoint directory (or its .zip)
keymaps.py    the token encoder, the heads, and the key bookkeeping shared by every policy
policies.py   Cortex XL / AGaLiTe and TransformerPolicy TrXL / NVIDIA TrXL maps, both directions
plans.py      detection (and refusals), the ViT-sliding map, spec-vs-weights checks
templates.py  architecture strings written on export
importer.py   import_metta (config + torch_ref state dict + residuals) and export_metta
"""
