"""`invoke bench.console` and `invoke bench.soak`: is the console responsive at fleet scale,
and does it stay light over a working day?

`bench.console` feeds the console 1,000 hosts and 10,000 progress events per second through
the same path as a real deploy and measures key-press latency and memory
(`console.tui.bench`). Targets: under 100 ms, under 300 MB.

`bench.soak` brings up a demo fleet of its own (lab "soak") and uses the console on it for a
long scripted session: hundreds of tab switches, the dialogs, real deploys
(`console.tui.soak`). Targets: idle CPU under 2% of a core, RSS growth under 10 MB an hour,
tab switch key-to-paint p95 under 50 ms.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import statistics
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from console.tasks.errors import clear_errors
from console.tasks.flags import number, whole_number

#: The soak's own demo: a lab, inventory and StatsD port beside the demo's.
SOAK_NAME = "soak"
SOAK_INVENTORY = Path("hosts") / "soak.yaml"
SOAK_STATSD_PORT = 18126


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


@task(
    help={
        "minutes": "how long the session lasts (default 20)",
        "hosts": "lab hosts in the soak's demo fleet (default 20)",
        "deploy_every": "a real deploy every this many rounds (default 3; 0: none)",
        "idle": "seconds the console sits idle after each round (default 10)",
        "strict": "exit non-zero when a target is missed",
    }
)
@clear_errors
def soak(c, minutes=None, hosts=None, deploy_every=None, idle=None, strict=False):
    """Use the console for a long session on a demo fleet of its own: RSS and CPU over time,
    key-to-paint latency of tab switches and dialogs, idle CPU, against a bare Textual app."""
    minutes = number(minutes, "--minutes", default=20.0)
    hosts = whole_number(hosts, "--hosts", default=20)
    deploy_every = whole_number(deploy_every, "--deploy-every", default=3, low=0)
    idle = number(idle, "--idle", default=10.0)
    from console.demo.fleet import start_demo, stop_demo
    from console.demo.trunk import Trunk, commit_change
    from console.service import open_service
    from console.tui.soak import SETTLE, percentile
    from console.tui.soak import soak as run_soak

    load_before = os.getloadavg()
    path = start_demo(
        hosts,
        name=SOAK_NAME,
        inventory_path=SOAK_INVENTORY,
        statsd_port=SOAK_STATSD_PORT,
        echo=lambda line: print(f"  {line}", flush=True),
    )
    try:
        service = open_service(path)
        trunk = Trunk(Path(service.inventory.repo), service.inventory.branch, {})
        counter = itertools.count(1)

        def new_change() -> str:
            n = next(counter)
            return commit_change(trunk, {"shop/changes/soak.txt": f"soak change {n}\n"}, f"Soak change {n}")

        print(f"soak: the console on {hosts} lab hosts for {minutes:g} minutes", flush=True)
        r = asyncio.run(
            run_soak(
                service,
                seconds=minutes * 60,
                deploy_every=max(1, deploy_every),
                idle=idle,
                new_change=new_change if deploy_every > 0 else None,
                echo=lambda line: print(line, flush=True),
            )
        )
    finally:
        stop_demo(name=SOAK_NAME, inventory_path=SOAK_INVENTORY)
    load_after = os.getloadavg()

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values):6.1f} ms  p95 {percentile(values, 0.95):6.1f} ms  (n={len(values)})"

    print(f"\nsoak: {r.seconds / 60:.1f} minutes, {r.rounds} rounds; load average {_load(load_before)} before")
    print(f"{'time':>7} {'rss MB':>7} {'cpu':>6}  doing")
    every = max(1, len(r.samples) // 24)
    for s in r.samples[::every]:
        print(f"{int(s.elapsed // 60):4d}:{int(s.elapsed % 60):02d} {s.rss:7.1f} {s.cpu:6.1%}  {s.doing}")
    switch_p95 = percentile(r.switches, 0.95)
    idle_cpu = statistics.median(r.idle_cpu) if r.idle_cpu else math.nan
    growth = r.rss_growth_per_hour()
    print(f"tab switch, key to paint:   {ms(r.switches)}   {'ok' if switch_p95 < 50 else 'OVER'} (target p95 < 50 ms)")
    print(f"  bare Textual app:         {ms(r.bare_switches)}")
    print(f"  ratio of medians:         {statistics.median(r.switches) / statistics.median(r.bare_switches):.2f}x")
    if r.switches_deploying:
        print(f"  while a deploy runs:      {ms(r.switches_deploying)}")
    print(f"dialog open, key to paint:  {ms([t for times in r.dialogs.values() for t in times])}")
    for name, times in r.dialogs.items():
        print(f"  {name + ':':<24}  {ms(times)}")
    print(
        f"idle CPU: median {idle_cpu:.2%} of a core over {len(r.idle_cpu)} windows of {idle:g} s from {SETTLE:g} s"
        f" after the last key (bare app {statistics.median(r.bare_idle_cpu):.2%})"
        f"   {'ok' if idle_cpu < 0.02 else 'OVER'} (target < 2%)"
    )
    if r.settle_cpu:
        print(
            f"  the {SETTLE:g} s after the last key (its paint, the deferred full collection): median"
            f" {statistics.median(r.settle_cpu):.0f} ms of CPU, max {max(r.settle_cpu):.0f} ms"
        )
    first = next((s.rss for s in r.samples if s.elapsed > r.warm), math.nan)
    print(
        f"RSS: {first:.1f} MB after the first round, {r.samples[-1].rss if r.samples else math.nan:.1f} MB at the end;"
        f" growth {growth:+.1f} MB/hour   {'ok' if growth < 10 else 'OVER'} (target < 10 MB/hour)"
    )
    results = [result for result, _ in r.deploys]
    if r.deploys:
        took = statistics.median(t for _, t in r.deploys)
        print(
            f"deploys: {len(r.deploys)} ({', '.join(f'{results.count(x)} {x}' for x in sorted(set(results)))}), median {took:.1f} s"
        )
    print(f"widgets alive: {r.widgets[0]} after the first round, {r.widgets[1]} at the end")
    print(f"load average after: {_load(load_after)} (2 cores, shared)")
    if strict and not (switch_p95 < 50 and idle_cpu < 0.02 and growth < 10):
        raise Exit("error: soak: a target was missed", code=1)


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


ns = Collection("bench")
ns.add_task(console)
ns.add_task(soak)
TASKS = (console, soak)
