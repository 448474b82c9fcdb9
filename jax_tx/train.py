"""Contract alias: `python -m jax_tx.train ...` runs `jax-tx train ...` (jax_tx.cli.train)."""

import sys

from jax_tx.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
