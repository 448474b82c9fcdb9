"""Contract alias: `jax_tx.convert` is `jax_tx.io.convert` (the same module object)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("jax_tx.io.convert")
