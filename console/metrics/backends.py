"""The metric backends an inventory may name (`KeyMetric.source`), and `source_for`.

This is the one module that knows every implementation of `console.metrics.source.MetricSource`;
the interface knows none, and each backend knows only the interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from console.core.errors import ConsoleError
from console.metrics.prometheus import PrometheusSource
from console.metrics.source import MetricSource
from console.metrics.statsd.source import StatsdSource
from console.metrics.store import store_path

if TYPE_CHECKING:
    from console.config.inventory import Inventory, KeyMetric


def _statsd(inventory: Inventory, metric: KeyMetric) -> MetricSource:
    return StatsdSource(store_path(inventory))


def _prometheus(inventory: Inventory, metric: KeyMetric) -> MetricSource:
    if not inventory.metrics.prometheus:
        raise ConsoleError(
            f"{inventory.path}: key metric {metric.name!r} reads Prometheus, "
            "but metrics.prometheus (a base URL) is not set"
        )
    return PrometheusSource(inventory.metrics.prometheus)


#: Each `source:` value of a key metric, and how its source is made.
BACKENDS: dict[str, Callable[[Inventory, KeyMetric], MetricSource]] = {
    "statsd": _statsd,
    "prometheus": _prometheus,
}


def source_for(inventory: Inventory, metric: KeyMetric) -> MetricSource:
    """The source that answers for `metric` under this inventory."""
    return BACKENDS[metric.source](inventory, metric)
