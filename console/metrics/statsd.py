"""The embedded StatsD collector, and the source that reads what it stored.

Only one process can bind the StatsD UDP port, yet the deploy process, every open console
and `invoke watch` need the same numbers. So one small collector process listens and writes
one-second buckets to the store (`console.metrics.store`), and every process reads the store:

    python -m console.metrics.statsd --listen 127.0.0.1:8125 --store STATE_DIR/metrics.sqlite

`ensure_collector(inventory)` starts it detached if it is not running and returns at once;
`stop_collector(inventory)` stops it. Its pid is in `metrics.pid` next to the store, its
complaints in `metrics.log`.

The line protocol: `name:VALUE|TYPE[|@RATE][|#tags]`, several lines per packet, where TYPE is
`c` (counter), `ms` or `h` (timer), `g` (gauge; a signed value like `+3` changes it). Sets
(`s`) are not kept. Lines that do not parse are ignored.
"""

from __future__ import annotations

import argparse
import fcntl
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from console.core.errors import ConsoleError
from console.metrics.source import MetricSource, Point, grid, store_path
from console.metrics.store import (
    Aggregate,
    Row,
    StoreReader,
    StoreWriter,
    bucket_index,
    quantile,
)

if TYPE_CHECKING:
    from console.config.inventory import Inventory, KeyMetric

_TYPES = {"c": "c", "ms": "ms", "h": "ms", "g": "g"}
#: Seconds between writes to the store.
FLUSH_EVERY = 0.5


@dataclass(frozen=True)
class Sample:
    """One parsed StatsD line."""

    key: str
    type: str  # "c", "ms" or "g"
    value: float
    rate: float = 1.0
    delta: bool = False  # a gauge change (+3, -2) rather than a new value


def parse_line(line: str) -> Sample | None:
    """The sample one line describes, or None for a line that is garbage or not kept."""
    line = line.strip()
    name, sep, rest = line.partition(":")
    if not sep or not name or any(c.isspace() or c in "|@" for c in name):
        return None
    fields = rest.split("|")
    if len(fields) < 2:
        return None
    text, kind = fields[0].strip(), _TYPES.get(fields[1].strip())
    if kind is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    rate = 1.0
    for extra in fields[2:]:
        if extra.startswith("@"):
            try:
                rate = float(extra[1:])
            except ValueError:
                return None
            if not (0 < rate <= 1):
                return None
        elif not extra.startswith("#"):  # dogstatsd tags are ignored, anything else is garbage
            return None
    delta = kind == "g" and text[:1] in "+-"
    return Sample(name, kind, value, rate, delta)


def parse_packet(data: bytes) -> list[Sample]:
    """Every sample in one datagram (lines separated by newlines)."""
    text = data.decode("utf-8", errors="replace")
    return [s for s in map(parse_line, text.split("\n")) if s is not None]


class Aggregator:
    """Folds samples into per-second deltas until they are written to the store."""

    def __init__(self) -> None:
        self.deltas: dict[tuple[str, str, int], Aggregate] = {}
        self.gauges: dict[str, float] = {}

    def add(self, sample: Sample, now: float) -> None:
        agg = self.deltas.setdefault((sample.key, sample.type, int(now)), Aggregate())
        weight = 1.0 / sample.rate
        if sample.type == "c":
            agg.count += sample.value * weight
        elif sample.type == "ms":
            value = max(sample.value, 0.0)
            agg.count += weight
            agg.sum += value * weight
            index = bucket_index(value)
            agg.hist[index] = agg.hist.get(index, 0.0) + weight
        else:
            value = self.gauges.get(sample.key, 0.0) + sample.value if sample.delta else sample.value
            self.gauges[sample.key] = value
            agg.count += 1
            agg.last = value

    def take(self) -> dict[tuple[str, str, int], Aggregate]:
        deltas, self.deltas = self.deltas, {}
        return deltas


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def serve(listen: tuple[str, int], store: Path, stop: list[bool] | None = None) -> None:
    """Receive StatsD datagrams on `listen` and write them to `store` until `stop[0]` is set."""
    stop = stop if stop is not None else [False]
    family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(listen)
    sock.settimeout(0.1)
    writer = StoreWriter(store)
    agg = Aggregator()
    last_flush = 0.0
    try:
        while not stop[0]:
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                data = None
            now = time.time()
            if data:
                for sample in parse_packet(data):
                    agg.add(sample, now)
            if now - last_flush >= FLUSH_EVERY:
                # every second since the last write was watched (unless the process stalled)
                alive = list(range(int(last_flush), int(now) + 1)) if now - last_flush < 5 else [int(now)]
                writer.write(agg.take(), alive)
                writer.prune(now)
                last_flush = now
        writer.write(agg.take(), [int(time.time())])
    finally:
        writer.close()
        sock.close()


# -- the collector process ------------------------------------------------------------------


def pid_path(store: Path) -> Path:
    return Path(store).with_name("metrics.pid")


def log_path(store: Path) -> Path:
    return Path(store).with_name("metrics.log")


def collector_pid(store: str | Path) -> int | None:
    """The pid of the collector writing `store`, or None if none is running.

    A running collector holds an exclusive lock on its pidfile for as long as it lives, so a
    stale pidfile (a crash, a reboot, a recycled pid) never counts."""
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
    with open(store.with_name("metrics.lock"), "a") as spawning:
        fcntl.flock(spawning, fcntl.LOCK_EX)  # one spawner at a time
        pid = collector_pid(store)
        if pid is not None:
            return pid
        # the pidfile is locked here and the lock handed to the child with the descriptor, so
        # the collector counts as running from this moment until it exits
        fd = os.open(pid_path(store), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with open(os.devnull, "rb") as devnull, open(log_path(store), "ab") as log:
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


def main(argv: list[str] | None = None) -> int:
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
        fd = os.open(pid_path(store), os.O_RDWR | os.O_CREAT, 0o644)
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


# -- reading the store ------------------------------------------------------------------------

#: A counter rate needs the collector up for half the window, or for 10 s of a long one.
_MIN_ALIVE, _MIN_ALIVE_SECONDS = 0.5, 10


class StatsdSource(MetricSource):
    """Key metrics from the collector's store. `metric.query` is the StatsD key."""

    def __init__(self, store: str | Path) -> None:
        self.reader = StoreReader(store)

    def _kind(self, metric: KeyMetric) -> str:
        if metric.stat == "rate":
            # a rate of a timer key counts its samples, when nothing counts it as a counter
            if not self.reader.has(metric.query, "c") and self.reader.has(metric.query, "ms"):
                return "ms"
            return "c"
        return "g" if metric.stat == "gauge" else "ms"

    def value(self, metric: KeyMetric, start: float, end: float) -> float | None:
        first, last = math.ceil(start), math.floor(end) - 1  # whole seconds inside the window
        if last < first:
            return None
        kind = self._kind(metric)
        rows = self.reader.rows(metric.query, kind, first, last)
        alive = self.reader.alive(first, last) if metric.stat == "rate" else set()
        return _reduce(metric.stat, rows, alive, last - first + 1)

    def series(self, metric: KeyMetric, start: float, end: float, step: float) -> list[Point]:
        times = grid(start, end, step)
        if not times:
            return []
        first, last = math.floor(start), math.ceil(end)
        kind = self._kind(metric)
        rows = self.reader.rows(metric.query, kind, first, last)
        alive = self.reader.alive(first, last) if metric.stat == "rate" else set()
        bins: list[list[Row]] = [[] for _ in times]
        live: list[set[int]] = [set() for _ in times]
        for row in rows:
            i = int((row.ts - start) // step)
            if 0 <= i < len(times):
                bins[i].append(row)
        for ts in alive:
            i = int((ts - start) // step)
            if 0 <= i < len(times):
                live[i].add(ts)
        seconds = [len(range(math.ceil(t), math.ceil(t + step))) for t in times]
        return [(t, _reduce(metric.stat, b, a, n)) for t, b, a, n in zip(times, bins, live, seconds, strict=True)]


def _reduce(stat: str, rows: list[Row], alive: set[int], seconds: int) -> float | None:
    if stat == "rate":
        up = len(alive | {r.ts for r in rows})
        if seconds <= 0 or up == 0 or up < min(_MIN_ALIVE * seconds, _MIN_ALIVE_SECONDS):
            return None
        return sum(r.count for r in rows) / up * 60.0
    if stat == "gauge":
        values = [r.last for r in rows if r.last is not None]
        return values[-1] if values else None
    count = sum(r.count for r in rows)
    if count <= 0:
        return None
    if stat == "mean":
        return sum(r.sum for r in rows) / count
    hist: dict[int, float] = {}
    for r in rows:
        for index, n in (r.hist or {}).items():
            hist[index] = hist.get(index, 0.0) + n
    return quantile(hist, 0.95)


if __name__ == "__main__":
    sys.exit(main())
