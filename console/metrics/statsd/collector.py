"""The collector process: started detached when needed, found through its pidfile, stopped.

`ensure_collector(inventory)` starts it if it is not running and returns at once;
`stop_collector(inventory)` stops it. Its pid is in `metrics.pid` next to the store, its
complaints in `metrics.log`. A running collector holds an exclusive lock on its pidfile for
as long as it lives, so a stale pidfile (a crash, a reboot, a recycled pid) never counts.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from console.core.errors import ConsoleError
from console.metrics.store import store_path

if TYPE_CHECKING:
    from console.config.inventory import Inventory


def pid_path(store: Path) -> Path:
    return Path(store).with_name("metrics.pid")


def log_path(store: Path) -> Path:
    return Path(store).with_name("metrics.log")


def collector_pid(store: str | Path) -> int | None:
    """The pid of the collector writing `store`, or None if none is running."""
    try:
        fd = os.open(pid_path(Path(store)), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode("ascii", "replace").split()
            return int(text[0]) if text and text[0].isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def start_collector(listen: tuple[str, int], store: str | Path) -> int:
    """Start a collector for `store` unless one runs; return its pid. Never waits for it."""
    store = Path(store)
    store.parent.mkdir(parents=True, exist_ok=True)
    # every file here is private (0600), like the rest of the state directory
    with os.fdopen(os.open(store.with_name("metrics.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)) as spawning:
        fcntl.flock(spawning, fcntl.LOCK_EX)  # one spawner at a time
        pid = collector_pid(store)
        if pid is not None:
            return pid
        # the pidfile is locked here and the lock handed to the child with the descriptor, so
        # the collector counts as running from this moment until it exits
        fd = os.open(pid_path(store), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            log_fd = os.open(log_path(store), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            with open(os.devnull, "rb") as devnull, os.fdopen(log_fd, "ab") as log:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "console.metrics.statsd",
                        "--listen",
                        f"{listen[0]}:{listen[1]}",
                        "--store",
                        str(store),
                        "--lock-fd",
                        str(fd),
                    ],
                    stdin=devnull,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    pass_fds=(fd,),
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{proc.pid}\n".encode(), 0)
        finally:
            os.close(fd)
        return proc.pid


def ensure_collector(inventory: Inventory) -> None:
    """Start this inventory's StatsD collector, detached, if it is not running. Returns at once."""
    start_collector(inventory.metrics.statsd, store_path(inventory))


def stop_collector(inventory_or_store, timeout: float = 5.0) -> bool:
    """Stop the collector (SIGTERM, then SIGKILL after `timeout`); True if one was running."""
    store = inventory_or_store if isinstance(inventory_or_store, (str, Path)) else store_path(inventory_or_store)
    pid = collector_pid(store)
    if pid is None:
        return False
    if pid <= 0:
        raise ConsoleError(f"{pid_path(Path(store))}: a collector holds it but its pid is unreadable")
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while collector_pid(store) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.02)
        if collector_pid(store) is not None:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    """Collect a collector that this process started, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
