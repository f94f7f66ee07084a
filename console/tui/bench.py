"""The console under load, measured: what `invoke bench.console` runs.

Feeds the console 1,000 hosts and 10,000 progress events per second through the same
path as a real deploy (a service whose `follow()` yields events on the follow worker
thread), presses keys with Textual's Pilot while the events flow, and reports how long
each key press takes to be handled (median, p95) and the peak RSS. A baseline with no
events runs first in the same process, for the ratio. Targets: under 100 ms, under 300 MB.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import threading
import time
from collections.abc import Iterator

from console.core.errors import ConsoleError
from console.core.events import PHASES, DeployStarted, Event, HostDone, HostProgress, PhaseStarted, WatchVerdict
from console.service import Change, DeployRecord, KeyMetric, LockInfo, Marker, Preview, Serving

FLEET_PHASES = ("sync-assets", "sync-code", "activate", "restart", "verify")


class BenchService:
    """A `ConsoleService` with no engine behind it: `follow()` is a paced synthetic stream,
    everything else is empty (a bench deploys nothing)."""

    def __init__(self, hosts: int, rate: float) -> None:
        self.environment = "bench"
        self.host_names = tuple(f"web{i:04d}" for i in range(1, hosts + 1))
        self.key_metrics: tuple[KeyMetric, ...] = ()
        self.metrics_baseline = 120.0
        self.rate = rate
        self.sent = 0
        self.began = 0.0

    def live_revision(self) -> str | None:
        return "0" * 40

    def serving(self) -> Serving | None:
        return Serving("0" * 40, "bench", "bench", "bench-0", "deploy", "bench", 0.0)

    def queue(self) -> list[Change]:
        return []

    def preview(self, sha: str) -> Preview:
        raise ConsoleError("the bench deploys nothing")

    def start_deploy(
        self, sha: str, override: str | None = None, *, rolling: bool = False, only_failed: bool = False
    ) -> str:
        raise ConsoleError("the bench deploys nothing")

    dry_run = start_deploy

    def failed_hosts(self) -> list[str]:
        return []

    def retry_failed(self) -> str:
        raise ConsoleError("the bench deploys nothing")

    def switch_target(self, release: str | None = None) -> DeployRecord:
        raise ConsoleError("the bench deploys nothing")

    def start_switch(self, release: str) -> str:
        raise ConsoleError("the bench deploys nothing")

    def abort(self, deploy_id: str) -> None:
        raise ConsoleError("the bench deploys nothing")

    def running_deploy(self) -> str | None:
        return None

    def _stream(self, deploy_id: str) -> Iterator[Event]:
        hosts = self.host_names
        chunks = tuple(hosts[i : i + 10] for i in range(0, len(hosts), 10))
        yield DeployStarted(
            deploy_id,
            environment="bench",
            user="bench",
            release="r1",
            revision="1" * 40,
            previous_revision="0" * 40,
            hosts=hosts,
            chunks=chunks,
            phases=PHASES,
            strategy="chunked",
        )
        while True:
            for phase in FLEET_PHASES:
                yield PhaseStarted(deploy_id, phase=phase, hosts=hosts)
                for host in hosts:
                    yield HostProgress(deploy_id, phase=phase, host=host, message="rsync 42%", bytes=4096)
                    yield HostDone(deploy_id, phase=phase, host=host, seconds=0.4, bytes=8192)

    def follow(self, deploy_id: str, stop: threading.Event) -> Iterator[Event]:
        """`rate` events a second, in 10 ms bursts, until `stop`."""
        self.began = time.perf_counter()
        burst = max(1, int(self.rate / 100))
        stream = self._stream(deploy_id)
        while not stop.is_set():
            for _ in range(burst):
                yield next(stream)
            self.sent += burst
            ahead = self.began + self.sent / self.rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)

    def events(self, deploy_id: str) -> list[Event]:
        return []

    def history(self, limit: int = 50) -> list[DeployRecord]:
        return []

    def lock_status(self) -> LockInfo | None:
        return None

    def take_lock(self, reason: str) -> None:
        pass

    def release_lock(self) -> None:
        pass

    def metric_series(
        self, metric: KeyMetric, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]]:
        return []

    def markers(self, since: float) -> list[Marker]:
        return []

    def verdicts(self, deploy_id: str) -> list[WatchVerdict]:
        return []


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / (1024 * 1024)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def _presses(app, grid, count: int, gap: float) -> tuple[list[float], list[float]]:
    """Press right/left `count` times; returns (handled ms, painted ms) per press.

    Keys go in exactly as a terminal's do (`driver.send_message(Key)`, what Pilot does),
    but without Pilot's wait-for-idle, which measures whole-process CPU and so never sees
    a console that is busy folding events as idle. "handled" is until the grid's binding
    ran (the cursor moved); "painted" is until the grid rendered the moved cursor.
    """
    from textual import events

    painted_at = [0.0, -1]
    render_line = grid.render_line

    def spy(y: int):
        strip = render_line(y)
        painted_at[0], painted_at[1] = time.perf_counter(), grid.cursor
        return strip

    grid.render_line = spy
    handled: list[float] = []
    painted: list[float] = []
    try:
        for i in range(count):
            key, delta = ("right", 1) if i % 2 == 0 else ("left", -1)
            target = grid.cursor + delta
            t0 = time.perf_counter()
            event = events.Key(key, None)
            event.set_sender(app)
            app._driver.send_message(event)
            deadline = t0 + 10
            while grid.cursor != target and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            t1 = time.perf_counter()
            handled.append((t1 - t0) * 1000)
            while not (painted_at[0] >= t0 and painted_at[1] == target) and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            painted.append((max(painted_at[0], t1) - t0) * 1000)
            await asyncio.sleep(gap)
    finally:
        del grid.render_line
    return handled, painted


async def measure(hosts: int, rate: float, presses: int, warmup: float) -> dict[str, float]:
    from console.tui.app import ConsoleApp
    from console.tui.widgets.fleet_grid import FleetGrid

    service = BenchService(hosts, rate)
    app = ConsoleApp(service, poll_interval=3600, metrics_interval=3600)
    out: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await pilot.pause(0.2)
        screen = app.console_screen
        grid = screen.query_one(FleetGrid)
        grid.focus()
        await pilot.pause(0.1)
        base_handled, base_trip = await _presses(app, grid, presses, 0.05)
        out["rss_base"] = _rss_mb()

        screen.attach("bench-1")
        await pilot.pause(warmup)
        t0, e0, b0 = time.perf_counter(), service.sent, screen.batches
        load_handled, load_trip = await _presses(app, grid, presses, 0.1)
        elapsed = time.perf_counter() - t0
        out["rate"] = (service.sent - e0) / elapsed
        out["batches_per_s"] = (screen.batches - b0) / elapsed
        out["folded"] = screen.feed.view.events if screen.feed else 0
        out["rss_load"] = _rss_mb()
        screen._stop.set()
    for name, values in (
        ("base", base_handled),
        ("base_trip", base_trip),
        ("load", load_handled),
        ("load_trip", load_trip),
    ):
        out[f"{name}_median"] = statistics.median(values)
        out[f"{name}_p95"] = _pct(values, 0.95)
    return out
