"""The one error type of the Metta readers and writers (the CLI turns it into one line and exit 2)."""

from __future__ import annotations


class MettaError(ValueError):
    """A Metta checkpoint cannot be read, mapped or written; the message names the problem and the fix."""


class UnsafePickleError(MettaError):
    """The pickle names a global that is not on the allowlist (it would run code if loaded with torch.load)."""
