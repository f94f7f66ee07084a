"""The collector's UDP loop: receive StatsD datagrams, fold them, write them every half second."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from console.metrics.statsd.aggregator import Aggregator
from console.metrics.statsd.protocol import parse_packet
from console.metrics.store import StoreWriter

#: Seconds between writes to the store.
FLUSH_EVERY = 0.5


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
