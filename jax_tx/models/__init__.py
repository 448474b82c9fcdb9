"""The policies: observation encoder -> memory core -> actor and critic heads.

policy.py       Policy, make_policy, initial_memory (the public entry points)
registry.py     which module implements each variant (shared with torch_ref.models)
checks.py       input-shape and memory-key checks (shared with torch_ref)
gtrxl.py trxl.py trxl_nvidia.py agalite.py sliding.py lstm.py gru.py mlp.py slot.py   one file per variant
aux_tokens.py   history inputs (previous action, reward, reset) added to the encoder latent
"""
