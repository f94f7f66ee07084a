"""Key metrics: where they come from, how they are kept, and the watch after the push.

Engine-side: nothing here imports `textual`.

- `source`: the `MetricSource` interface and `source_for(inventory, metric)`;
- `statsd`: the StatsD line parser, the collector process and `StatsdSource`;
- `store`: the one-second-bucket SQLite store the collector writes and everyone reads;
- `prometheus`: `PrometheusSource`, over the Prometheus HTTP API;
- `markers`: `send_marker(inventory, label)`, the `deploys.<environment>` counter;
- `watch`: `judge()` (the rule) and `Watch` (the loop that emits `WatchVerdict`s).
"""

import importlib
from typing import Any

# Names are imported on first use, so that `python -m console.metrics.statsd` (the collector)
# does not import its own module twice.
_WHERE = {
    "send_marker": "markers",
    "PrometheusSource": "prometheus",
    "MetricSource": "source",
    "source_for": "source",
    "store_path": "source",
    "StatsdSource": "statsd",
    "ensure_collector": "statsd",
    "stop_collector": "statsd",
    "DEGRADED": "watch",
    "NO_DATA": "watch",
    "OK": "watch",
    "Judgement": "watch",
    "Watch": "watch",
    "judge": "watch",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'console.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(f"console.metrics.{_WHERE[name]}"), name)


__all__ = [
    "DEGRADED",
    "NO_DATA",
    "OK",
    "Judgement",
    "MetricSource",
    "PrometheusSource",
    "StatsdSource",
    "Watch",
    "ensure_collector",
    "judge",
    "send_marker",
    "source_for",
    "stop_collector",
    "store_path",
]
