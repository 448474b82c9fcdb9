"""SIGINT / SIGTERM during training: finish the current compiled call, then stop cleanly.

    with StopSignals() as stop:
        while ...:
            state = step(state)            # a signal here only sets stop.signum
            if stop.signum: break          # the caller checkpoints, flushes, exits 128 + signum

A second signal while the first is being handled restores the default behaviour, so two
Ctrl-C always stop the process. Outside the main thread nothing is installed.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Training stopped on a signal after checkpointing; exit code 128 + signum."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    def __init__(self, echo=print):
        self.signum: int | None = None
        self.echo = echo
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # second signal: give up waiting
            self.restore()
            raise KeyboardInterrupt
        self.signum = signum
        self.echo(
            f"\n{signal_name(signum)} received: finishing the current call, then checkpointing "
            f"(send it again to stop at once)",
        )

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self.restore()
