"""Where a run ran: library versions, CPU / accelerator model, git commit (stored with every run).

    provenance()  ->  {"jax": "0.6.2", "jaxlib": ..., "flax": ..., "optax": ..., "orbax": ...,
                       "torch": ... or None, "python": ..., "platform": ..., "cpu": ..., "devices": [...],
                       "git_commit": "c13d678..." or None, "git_dirty": bool or None}

Nothing here raises: a piece that cannot be read is recorded as None.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = {"jax": "jax", "jaxlib": "jaxlib", "flax": "flax", "optax": "optax", "orbax": "orbax-checkpoint",
            "torch": "torch", "numpy": "numpy"}  # fmt: skip


def package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU model name (/proc/cpuinfo on Linux, else platform.processor()) and the core count."""
    import os

    name = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name} ({os.cpu_count()} cores)"


def git_commit(repo: Path | None = None) -> tuple[str | None, bool | None]:
    """(HEAD commit, has uncommitted changes) of the checkout jax_tx is imported from; (None, None) outside git."""
    repo = repo or Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def devices() -> list[str]:
    """['cpu: cpu'] or ['gpu: NVIDIA H200', ...]: platform and model of each jax device."""
    try:
        import jax

        return [f"{d.platform}: {d.device_kind}" for d in jax.devices()]
    except Exception:  # noqa: BLE001 -- provenance must never stop a run
        return []


@functools.lru_cache(maxsize=1)
def provenance() -> dict:
    commit, dirty = git_commit()
    info = {name: package_version(dist) for name, dist in PACKAGES.items()}
    info.update(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=cpu_model(),
        devices=devices(),
        git_commit=commit,
        git_dirty=dirty,
    )
    return info
