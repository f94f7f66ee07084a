"""`invoke bench.console`: is the console still responsive at fleet scale?

Feeds the console 1,000 hosts and 10,000 progress events per second through the same
path as a real deploy and measures key-press latency and memory (`console.tui.bench`).
Targets: under 100 ms, under 300 MB.
"""

from __future__ import annotations

import asyncio

from invoke import Collection, task
from invoke.exceptions import Exit

from console.tasks.errors import clear_errors
from console.tasks.flags import number, whole_number


@task(
    help={
        "hosts": "hosts in the synthetic fleet (default 1000)",
        "rate": "progress events per second (default 10000)",
        "presses": "key presses measured per run (default 30)",
        "warmup": "seconds of events before measuring (default 2)",
        "strict": "exit non-zero when a target is missed",
    }
)
@clear_errors
def console(c, hosts=None, rate=None, presses=None, warmup=None, strict=False):
    """Key-press latency and memory of the console under 1,000 hosts x 10,000 events/s."""
    from console.tui.bench import measure

    hosts = whole_number(hosts, "--hosts", default=1000)
    rate = number(rate, "--rate", default=10000.0)
    presses = whole_number(presses, "--presses", default=30)
    warmup = number(warmup, "--warmup", default=2.0)
    r = asyncio.run(measure(hosts, rate, presses, warmup))
    ok_latency = r["load_p95"] < 100
    ok_memory = r["rss_load"] < 300
    ratio = r["load_median"] / r["base_median"] if r["base_median"] else float("nan")
    print(
        f"console bench: {hosts} hosts, {r['rate']:,.0f} events/s delivered "
        f"(asked {rate:,.0f}), {r['batches_per_s']:.1f} UI batches/s, {r['folded']:,.0f} events folded"
    )
    print(f"  key press handled, idle:      median {r['base_median']:6.1f} ms   p95 {r['base_p95']:6.1f} ms")
    print(
        f"  key press handled, loaded:    median {r['load_median']:6.1f} ms   p95 {r['load_p95']:6.1f} ms"
        f"   ratio {ratio:.2f}x   {'ok' if ok_latency else 'OVER'} (target < 100 ms)"
    )
    print(
        f"  key press painted, idle/loaded: median {r['base_trip_median']:.1f} / {r['load_trip_median']:.1f} ms"
        f"   p95 {r['base_trip_p95']:.1f} / {r['load_trip_p95']:.1f} ms"
    )
    print(
        f"  peak RSS: {r['rss_base']:.0f} MB idle, {r['rss_load']:.0f} MB loaded"
        f"   {'ok' if ok_memory else 'OVER'} (target < 300 MB)"
    )
    if strict and not (ok_latency and ok_memory):
        raise Exit("console bench: a target was missed", code=1)


ns = Collection("bench")
ns.add_task(console)
TASKS = (console,)
