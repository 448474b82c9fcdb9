"""One live run per log dir: LOG_DIR/.lock holds the owner's PID and host.

    with RunLock(log_dir, warn=print):    # RunLocked if another live process holds it
        ...                               # the lock file is removed on exit

A lock left by a process that is gone (same host, PID not alive) is stale: it is taken over
with a warning. A lock from another host cannot be checked and is refused, naming the file to
delete if that run is really dead.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".lock"


class RunLocked(ValueError):
    """Another live run writes into the same log dir."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_owner(path: Path) -> dict:
    """The lock file's {"pid", "host", "started"}; {} when unreadable (a half-written lock)."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


class RunLock:
    def __init__(self, log_dir: str | os.PathLike, warn=print):
        self.path = Path(log_dir) / LOCK_NAME
        self.warn = warn
        self.held = False

    def check(self) -> None:
        """RunLocked if a live process (on this host) or another host holds the lock; writes nothing."""
        if not self.path.is_file():
            return
        owner = read_owner(self.path)
        pid, host = owner.get("pid"), owner.get("host")
        if host == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
            raise RunLocked(
                f"{self.path.parent} is in use by a live run (pid {pid} on {host}, started "
                f"{owner.get('started', '?')}); wait for it, stop it, or choose another --log-dir"
            )
        if host is not None and host != socket.gethostname():
            raise RunLocked(
                f"{self.path.parent} is locked by pid {pid} on host {host}; if that run is dead, delete "
                f"{self.path}, else choose another --log-dir"
            )

    def _try_create(self) -> bool:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(me) + "\n")
        return True

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lock removed by us (or a racing process) is retried
            if self._try_create():
                self.held = True
                return self
            owner = read_owner(self.path)
            pid, host = owner.get("pid"), owner.get("host")
            if not owner and time.time() - self.path.stat().st_mtime < 5:  # being written right now
                time.sleep(0.2)
                continue
            if pid == os.getpid() and host == socket.gethostname():
                raise RunLocked(f"{self.path.parent} is already in use by this process; choose another --log-dir")
            self.check()
            self.warn(f"warning: taking over the stale lock {self.path} (pid {pid} on {host} is gone)")
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        raise RunLocked(f"could not take the lock {self.path}; another run may be starting there, retry")

    def release(self) -> None:
        if self.held:
            if read_owner(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
