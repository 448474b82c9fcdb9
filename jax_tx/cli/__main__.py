"""`python -m jax_tx.cli SUBCOMMAND ...` is `jax-tx SUBCOMMAND ...`."""

import sys

from jax_tx.cli import main

sys.exit(main())
