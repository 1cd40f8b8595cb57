"""Tests of the config file watcher."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from monitor._filewatch import FileWatcher

INTERVAL = 0.05


def touch(path: Path, text: str, offset: float) -> None:
    path.write_text(text)
    stamp = time.time() + offset
    os.utime(path, (stamp, stamp))


def wait_for(event: threading.Event, timeout: float = 10.0) -> bool:
    return event.wait(timeout)


def test_file_watcher_reloads_once_per_change(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    touch(config, "a", 0)
    calls: list[float] = []
    called = threading.Event()

    def on_change() -> None:
        calls.append(time.monotonic())
        called.set()

    watcher = FileWatcher(lambda: [config], on_change, interval_seconds=INTERVAL)
    watcher.start()
    try:
        touch(config, "b", 10)
        assert wait_for(called)
    finally:
        watcher.stop()

    assert len(calls) == 1


def test_file_watcher_skips_files_already_reloaded(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    touch(config, "a", 0)
    calls: list[str] = []
    called = threading.Event()

    def on_change() -> None:
        calls.append(config.read_text())
        called.set()

    watcher = FileWatcher(lambda: [config], on_change, interval_seconds=INTERVAL)
    watcher.start()
    try:
        # A SIGHUP reload read the edit, so the watcher must not repeat it.
        touch(config, "b", 10)
        watcher.mark_applied()
        # A later edit still reloads; by then the first one would have too.
        time.sleep(5 * INTERVAL)
        touch(config, "c", 20)
        assert wait_for(called)
    finally:
        watcher.stop()

    assert calls == ["c"]
