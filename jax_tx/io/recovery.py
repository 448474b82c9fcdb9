"""Restore the newest intact checkpoint step, naming any damaged newer one.

    r = restore_intact(ckpt_dir, warn=print)          # newest step that restores
    r = restore_intact(ckpt_dir, step=7)              # exactly step 7 (an error if it is damaged)

When orbax fails half-way through a read, tensorstore completes the reads still in flight after
orbax closed its event loop and prints "RuntimeError: Event loop is closed" tracebacks on
stderr (some after our own one-line error). restore_intact filters these blocks out of
sys.stderr; every other output passes unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jax_tx.io import checkpoint

NOISE = "Event loop is closed"


class _DropLoopClosedTracebacks:
    """A sys.stderr wrapper that drops traceback blocks ending in 'RuntimeError: Event loop is closed'."""

    def __init__(self, stream):
        self.stream = stream
        self._line = ""
        self._block: list[str] | None = None
        self._open = 0
        self._noise_only = True

    def write(self, s: str) -> int:
        self._line += s
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            self._feed(line + "\n")
        return len(s)

    def _feed(self, line: str) -> None:
        """Buffer from a traceback header until every header has its exception line (threads interleave)."""
        header = line.startswith("Traceback (most recent call last):")
        if self._block is None and not header:
            self.stream.write(line)
            return
        self._block = (self._block or []) + [line]
        self._open += 1 if header else 0
        if not header and not line.startswith((" ", "\t")):  # an exception line closes one traceback
            self._open -= 1
            self._noise_only = self._noise_only and NOISE in line
            if self._open <= 0:
                if not self._noise_only:
                    self.stream.write("".join(self._block))
                self._block, self._open, self._noise_only = None, 0, True

    def flush(self) -> None:
        if self._block is None and self._line:
            self.stream.write(self._line)
            self._line = ""
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _is_noise(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and NOISE in str(exc)


def quiet_orbax_noise() -> None:
    """Filter the 'Event loop is closed' reports of a failed orbax read out of stderr (idempotent).

    They reach stderr as bare tracebacks (tensorstore callbacks) and as "Exception ignored in ..."
    (sys.unraisablehook); both are dropped, everything else passes.
    """
    if not isinstance(sys.stderr, _DropLoopClosedTracebacks):
        sys.stderr = _DropLoopClosedTracebacks(sys.stderr)
    previous = sys.unraisablehook
    if getattr(previous, "_jax_tx_quiet", False):
        return

    def hook(unraisable) -> None:
        if not _is_noise(unraisable.exc_value):
            previous(unraisable)

    hook._jax_tx_quiet = True
    sys.unraisablehook = hook


def restore_intact(directory, step: int | None = None, *, warn=print, **kwargs) -> checkpoint.Restored:
    """checkpoint.restore of `step`, or (step None) of the newest step that restores.

    Each damaged step that is skipped is named in a warning; when none restores, the
    CheckpointError lists them. kwargs go to checkpoint.restore.
    """
    quiet_orbax_noise()
    path = Path(directory).absolute()
    steps = checkpoint.all_steps(path) if step is None else []
    if not steps:
        return checkpoint.restore(path, step, **kwargs)
    damaged = []
    for s in reversed(steps):
        try:
            r = checkpoint.restore(path, s, **kwargs)
        except checkpoint.CheckpointError as e:
            damaged.append((s, str(e)))
            continue
        for bad, why in damaged:
            warn(f"warning: {path} step {bad} is damaged ({why.split(' cannot be restored ')[-1][:160]}); "
                 f"using step {s}, the newest intact one")  # fmt: skip
        return r
    raise checkpoint.CheckpointError(
        f"{path}: none of the steps {steps} can be restored; the newest fails with: {damaged[0][1]}"
    )
