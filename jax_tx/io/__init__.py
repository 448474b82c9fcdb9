"""Weights and checkpoints on disk.

convert.py      torch state dict <-> flax params: generic rules checked against the flax init
formats.py      file formats: .pt/.pth, .safetensors, .msgpack, orbax directories; atomic writes
checkpoint.py   orbax checkpoints (params + config JSON + extra items), the training-run layout
verify.py       run both twins on the same random inputs and report max-abs differences
metta/          Metta's own checkpoints: restricted unpickler, .pt/.mpt/directory readers, key maps, export
"""
