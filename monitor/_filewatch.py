"""Reload on change: poll the modification times of the config and rule files."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS = 2.0
"""Time between two looks at the files."""

FileState = tuple[tuple[str, int | None, int | None], ...]
"""(path, modification time in ns, size) of each watched file; None if missing."""


def file_state(paths: Iterable[Path]) -> FileState:
    """Return the modification time and size of each file, sorted by path."""
    entries: list[tuple[str, int | None, int | None]] = []
    for path in sorted({str(path) for path in paths}):
        try:
            status = os.stat(path)
        except OSError:
            entries.append((path, None, None))
            continue
        entries.append((path, status.st_mtime_ns, status.st_size))
    return tuple(entries)


class FileWatcher:
    """Call ``on_change`` after the watched files changed and then stood still.

    A change is acted on once the files look the same on two polls in a row,
    so an editor that writes a file in several steps causes one reload, not
    one per step. A failed reload is not retried until the files change
    again.

    Parameters
    ----------
    paths : callable
        Returns the files to watch; it is called on every poll, so that a
        new file that matches a rule file glob is noticed.
    on_change : callable
        Called in the watcher thread, for example ``Daemon.reload``.
    interval_seconds : float
        Time between polls.
    """

    def __init__(
        self,
        paths: Callable[[], Iterable[Path]],
        on_change: Callable[[], object],
        interval_seconds: float = WATCH_INTERVAL_SECONDS,
    ) -> None:
        self.paths = paths
        self.on_change = on_change
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._applied: FileState = ()
        """The file state the running configuration was read from."""
        self._lock = threading.Lock()

    def start(self) -> None:
        """Record the current state of the files and start polling."""
        self.mark_applied()
        self._thread = threading.Thread(
            target=self._run, name="krwatch-file-watch", daemon=True
        )
        self._thread.start()

    def mark_applied(self) -> None:
        """Record the files as read, after a reload that this watcher did not start.

        A reload on SIGHUP or POST /-/reload reads the edited files already,
        so the watcher must not reload them a second time.
        """
        state = self._state()
        with self._lock:
            self._applied = state

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_seconds + 5)

    def _state(self) -> FileState:
        try:
            return file_state(self.paths())
        except Exception:
            logger.exception("Listing the config and rule files to watch failed")
            return ()

    def _run(self) -> None:
        candidate: FileState | None = None
        while not self._stop.wait(self.interval_seconds):
            current = self._state()
            with self._lock:
                applied = self._applied
            if current == applied:
                candidate = None
                continue
            if current != candidate:
                candidate = current  # Changed; wait until it stands still.
                continue

            changed = sorted({entry[0] for entry in set(current) ^ set(applied)})
            with self._lock:
                self._applied = current
            candidate = None
            logger.info(
                "Configuration files changed, reloading: %s",
                ", ".join(changed),
            )
            try:
                self.on_change()
            except Exception:
                logger.exception("Reloading after a file change failed")
