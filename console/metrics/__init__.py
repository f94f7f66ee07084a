"""Key metrics: where they come from, how they are kept, and the watch after the push.

Engine-side: nothing here imports `textual`.

- `source`: the `MetricSource` interface every backend implements;
- `backends`: the backends by name (`KeyMetric.source`) and `source_for(inventory, metric)`;
- `statsd`: the embedded StatsD collector (`python -m console.metrics.statsd`) and `StatsdSource`;
- `store`: the one-second-bucket SQLite store the collector writes and everyone reads;
- `prometheus`: `PrometheusSource`, over the Prometheus HTTP API;
- `markers`: `send_marker(inventory, label)`, the `deploys.<environment>` counter;
- `watch`: `judge()` (the rule) and `Watch` (the loop that emits `WatchVerdict`s).
"""
