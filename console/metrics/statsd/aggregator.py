"""Samples folded into per-second deltas, until the collector writes them to the store."""

from __future__ import annotations

from console.metrics.statsd.protocol import Sample
from console.metrics.store import Aggregate, bucket_index


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
