"""The collector's command line: `python -m console.metrics.statsd --listen HOST:PORT --store FILE`.

Run detached by `collector.start_collector` (which hands over the locked pidfile with
`--lock-fd`), or in the foreground by `invoke metrics.collect`.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
from pathlib import Path

from console.config.keys import parse_address
from console.metrics.statsd.collector import collector_pid, pid_path
from console.metrics.statsd.server import serve


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # the store and its -wal and -shm files are private, like the rest of the state directory
    parser = argparse.ArgumentParser(
        prog="python -m console.metrics.statsd",
        description="Receive StatsD metrics over UDP and keep one-second buckets in a SQLite store.",
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT to receive UDP datagrams on")
    parser.add_argument("--store", required=True, help="the SQLite store, e.g. STATE_DIR/metrics.sqlite")
    parser.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)  # the locked pidfile, from start_collector
    args = parser.parse_args(argv)
    try:
        listen = parse_address(args.listen)
    except ValueError as exc:
        parser.error(f"--listen: {exc}")
    store = Path(args.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    if args.lock_fd is not None:
        fd = args.lock_fd
    else:
        fd = os.open(pid_path(store), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"metrics collector: another collector writes {store} (pid {collector_pid(store)})", file=sys.stderr)
            return 2
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    stop = [False]

    def on_signal(signum, frame):
        stop[0] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve(listen, store, stop)
    except OSError as exc:
        print(f"metrics collector: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock: the collector no longer counts as running
    return 0
