"""Argument helpers shared by the subcommands (no jax import)."""

from __future__ import annotations

import json
from typing import Any


def parse_env_kw(items: list[str], subcommand: str) -> dict[str, Any]:
    """["corridor_length=8", "name=abc"] -> {"corridor_length": 8, "name": "abc"} (values as JSON, else strings).

    ValueError for an item without "=" (the subcommands print it as one line, exit 2).
    """
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--env-kw {item!r} must be KEY=VALUE, e.g. corridor_length=8")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out
