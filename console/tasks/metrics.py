"""`invoke metrics.*`: the StatsD collector of an environment, and its key metrics now.

invoke metrics.collect -i hosts/lab.yaml   # the collector in the foreground (Ctrl-C stops it)
invoke metrics.start -i hosts/lab.yaml     # detached, if it is not running
invoke metrics.stop -i hosts/lab.yaml
invoke metrics.status -i hosts/lab.yaml    # pid, store, and each key metric over the last minute
"""

from __future__ import annotations

import time

from invoke import Collection, Exit, task

from console.config.inventory import load_inventory
from console.core.errors import ConsoleError
from console.metrics.backends import source_for
from console.metrics.statsd import collector_pid, ensure_collector, stop_collector
from console.metrics.statsd.cli import main
from console.metrics.store import StoreReader, store_path
from console.tasks.errors import clear_errors

_HELP = {"inventory": "the environment's inventory file, e.g. hosts/lab.yaml"}


@task(help=_HELP)
@clear_errors
def collect(c, inventory):
    """Run the StatsD collector in the foreground; Ctrl-C stops it."""
    inv = load_inventory(inventory)
    store = store_path(inv)
    pid = collector_pid(store)
    if pid is not None:
        raise Exit(f"a collector already writes {store} (pid {pid}); stop it with invoke metrics.stop -i {inventory}")
    host, port = inv.metrics.statsd
    print(f"collecting StatsD on {host}:{port} into {store}; Ctrl-C stops")
    code = main(["--listen", f"{host}:{port}", "--store", str(store)])
    if code:
        raise Exit(code=code)


@task(help=_HELP)
@clear_errors
def start(c, inventory):
    """Start the StatsD collector detached, unless it is running."""
    inv = load_inventory(inventory)
    ensure_collector(inv)
    print(f"collector pid {collector_pid(store_path(inv))}, writing {store_path(inv)}")


@task(help=_HELP)
@clear_errors
def stop(c, inventory):
    """Stop the StatsD collector."""
    inv = load_inventory(inventory)
    print("collector stopped" if stop_collector(inv) else "no collector was running")


@task(help=_HELP)
@clear_errors
def status(c, inventory):
    """Show the collector and each key metric over the last minute."""
    inv = load_inventory(inventory)
    store = store_path(inv)
    pid = collector_pid(store)
    now = time.time()
    alive = StoreReader(store).alive(int(now) - 3600, int(now))
    state = f"running, pid {pid}" if pid else "not running"
    seen = f"last heartbeat {max(0.0, now - max(alive) - 1):.0f} s ago" if alive else "no heartbeat in the last hour"
    print(f"collector {state}; store {store}; {seen}")
    for metric in inv.metrics.key:
        try:
            value = source_for(inv, metric).value(metric, now - 60, now)
        except ConsoleError as exc:
            print(f"  {metric.name}: {exc}")
            continue
        shown = "no data" if value is None else f"{value:.4g}{metric.unit}"
        print(f"  {metric.name} ({metric.source} {metric.query}, {metric.stat}): {shown}")


ns = Collection("metrics", collect, start, stop, status)
