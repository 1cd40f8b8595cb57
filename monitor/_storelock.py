"""An exclusive lock on the store, so two daemons never share one file.

Two daemons on one SQLite file would both dispatch the same outbox and send
every notification twice. The lock is an ``flock`` on a file beside the
store; the kernel releases it when the process ends, even after SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from monitor.errors import KrwatchError


class StoreLock:
    """Hold the lock file ``<store>.lock`` for the life of one daemon.

    Parameters
    ----------
    store_path : Path
        The SQLite file of the store.

    Raises
    ------
    KrwatchError
        If another process holds the lock.
    """

    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name(store_path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise KrwatchError(
                f"Another krwatch process (PID {holder}) is using the store "
                f"{store_path}; stop it, or give this one another storage.path."
            ) from error
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Release the lock; calling it again does nothing."""
        if self._handle.closed:
            return
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
