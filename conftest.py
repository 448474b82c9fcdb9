"""One persistent JAX compilation cache for the whole test run (both pytest-xdist workers and every
subprocess a test starts inherit it through the environment), so a program compiled once is loaded
from disk by every later test that builds the same program. A user's own JAX_COMPILATION_CACHE_DIR
is kept. The cache changes no result: XLA loads the executable it would compile.

This module is imported before jax (pytest loads the root conftest first); the controller process
creates the folder and removes it when the run ends."""

from __future__ import annotations

import os
import shutil
import tempfile

CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_created: str | None = None

if CACHE_ENV not in os.environ:
    _created = tempfile.mkdtemp(prefix="jax_tx_test_cache_")
    os.environ[CACHE_ENV] = _created
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"


def pytest_unconfigure(config):
    if _created and not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(_created, ignore_errors=True)
