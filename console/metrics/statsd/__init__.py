"""The embedded StatsD collector, and the source that reads what it stored.

Only one process can bind the StatsD UDP port, yet the deploy process, every open console
and `invoke watch` need the same numbers. So one small collector process listens and writes
one-second buckets to the store (`console.metrics.store`), and every process reads the store:

    python -m console.metrics.statsd --listen 127.0.0.1:8125 --store STATE_DIR/metrics.sqlite

- `protocol`: the line protocol, `parse_line` / `parse_packet` into `Sample`s;
- `aggregator`: `Aggregator`, samples folded into per-second deltas until they are written;
- `server`: `serve`, the UDP loop that receives, folds and writes;
- `collector`: the collector process: `ensure_collector`, `stop_collector`, `collector_pid`;
- `cli`: its command line (`main`, what `python -m console.metrics.statsd` runs);
- `source`: `StatsdSource`, the key metrics read back from the store.
"""

from console.metrics.statsd.collector import collector_pid, ensure_collector, stop_collector
from console.metrics.statsd.source import StatsdSource

__all__ = ["StatsdSource", "collector_pid", "ensure_collector", "stop_collector"]
