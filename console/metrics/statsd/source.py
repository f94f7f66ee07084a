"""`StatsdSource`: key metrics read from the store the collector writes (`metric.query` is the StatsD key)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from console.metrics.source import MetricSource, Point, grid
from console.metrics.store import Row, StoreReader, quantile

if TYPE_CHECKING:
    from console.config.inventory import KeyMetric

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
