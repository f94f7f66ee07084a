"""The one small interface every metrics backend implements.

A `MetricSource` answers two questions about a key metric (`console.config.inventory.KeyMetric`):

- `value(metric, start, end)`: the metric over one window, in the metric's own terms: for
  `stat: rate` events per minute; for `p95` and `mean` milliseconds; for `gauge` the last
  value. None means no data (nobody was listening, or nothing was measured), which is not
  the same as 0 (listening, and no checkouts).
- `series(metric, start, end, step)`: the same, once per `step` seconds from `start`, as
  `(time, value or None)` points, for graphs.

The backends implement it (`console.metrics.statsd.source.StatsdSource`, the embedded
collector's store, the default; `console.metrics.prometheus.PrometheusSource`, a Prometheus
server's HTTP API) and `console.metrics.backends.source_for` picks one: this module
knows none of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.config.inventory import KeyMetric

#: A point of a series: (unix time of the step's start, value or None).
Point = tuple[float, "float | None"]


class MetricSource(ABC):
    """Reads key metrics over windows of time. Safe to call from any thread."""

    @abstractmethod
    def value(self, metric: KeyMetric, start: float, end: float) -> float | None:
        """The metric over [start, end), or None if there is no data."""

    @abstractmethod
    def series(self, metric: KeyMetric, start: float, end: float, step: float) -> list[Point]:
        """The metric once per `step` seconds over [start, end)."""


def grid(start: float, end: float, step: float) -> list[float]:
    """The step start times of a series over [start, end)."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    n = max(0, int((end - start) / step + 1e-9))
    return [start + i * step for i in range(n)]
