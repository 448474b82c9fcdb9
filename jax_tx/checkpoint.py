"""Contract alias: `jax_tx.checkpoint` is `jax_tx.io.checkpoint` (the same module object)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("jax_tx.io.checkpoint")
