"""The watch after the push: the rule (a pure function, as a table) and the loop on a fake clock."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from console.config.inventory import Host, Inventory, KeyMetric, Metrics, SSHSettings
from console.core.events import WatchVerdict, from_json, to_json
from console.metrics.source import MetricSource
from console.metrics.statsd import StatsdSource
from console.metrics.statsd.aggregator import Aggregator
from console.metrics.statsd.protocol import Sample
from console.metrics.store import StoreWriter
from console.metrics.watch import DEGRADED, NO_DATA, OK, Watch, judge

CHECKOUTS = KeyMetric("checkouts", "shop.checkouts", unit="/min", bad="down", limit=0.2)
LATENCY = KeyMetric("checkout p95", "shop.checkout", stat="p95", unit="ms", bad="up", limit=0.5)
ERRORS = KeyMetric("errors", "shop.errors", unit="/min", bad="up", limit=0.2, dry_run=True)


def _inventory(tmp_path: Path, key=(CHECKOUTS,), baseline=300.0, watch=300.0) -> Inventory:
    return Inventory(
        path=tmp_path / "lab.yaml",
        environment="lab",
        repo="/srv/repo",
        branch="main",
        deploy_path="/srv/www",
        ssh=SSHSettings("deploy", tmp_path / "key", tmp_path / "known_hosts"),
        hosts=(Host("web01", "127.0.0.1"),),
        state_dir=tmp_path / "state",
        metrics=Metrics(statsd=("127.0.0.1", 8125), baseline=baseline, watch=watch, key=tuple(key)),
    )


# -- the rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric, baseline, current, verdict, summary",
    [
        (CHECKOUTS, 41, 28, DEGRADED, "checkouts/min 41 → 28, -32%, limit -20%"),
        (CHECKOUTS, 41, 35, OK, "checkouts/min 41 → 35, -15%, limit -20%"),
        (CHECKOUTS, 40, 32, DEGRADED, "checkouts/min 40 → 32, -20%, limit -20%"),  # reaching it
        (CHECKOUTS, 41, 90, OK, "checkouts/min 41 → 90, +120%, limit -20%"),  # up is not bad
        (CHECKOUTS, 41, 0, DEGRADED, "checkouts/min 41 → 0, -100%, limit -20%"),
        (CHECKOUTS, None, 28, NO_DATA, "checkouts/min ? → 28, no baseline"),
        (CHECKOUTS, 41, None, NO_DATA, "checkouts/min 41 → ?, no current data"),
        (CHECKOUTS, 0, 5, NO_DATA, "checkouts/min 0 → 5, baseline is 0"),
        (LATENCY, 320, 410, OK, "checkout p95 320 ms → 410 ms, +28%, limit +50%"),
        (LATENCY, 320, 500, DEGRADED, "checkout p95 320 ms → 500 ms, +56%, limit +50%"),
        (LATENCY, 320, 100, OK, "checkout p95 320 ms → 100 ms, -69%, limit +50%"),  # down is not bad
        (ERRORS, 2.5, 4, DEGRADED, "errors/min 2.5 → 4, +60%, limit +20%, dry run"),
        (ERRORS, 2.5, 2.5, OK, "errors/min 2.5 → 2.5, +0%, limit +20%, dry run"),
        (ERRORS, 0, 0, OK, "errors/min 0 → 0, +0%, limit +20%, dry run"),
        (ERRORS, 0, 3, DEGRADED, "errors/min 0 → 3, new, limit +20%, dry run"),
        (ERRORS, None, None, NO_DATA, "errors/min ? → ?, no baseline, dry run"),
    ],
)
def test_judge(metric, baseline, current, verdict, summary):
    j = judge(metric, baseline, current)
    assert (j.verdict, j.summary) == (verdict, summary)
    assert (j.baseline, j.current) == (baseline, current)


def test_judge_reports_the_relative_change():
    assert judge(CHECKOUTS, 41, 28).change == pytest.approx(-13 / 41)
    assert judge(CHECKOUTS, None, 28).change is None
    assert judge(KeyMetric("n", "q", limit=0.125), 8, 7).summary == "n 8 → 7, -12%, limit -12.5%"


# -- the loop, on a fake clock --------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class RateSource(MetricSource):
    """A metric whose value at each instant is `level(t)`; a window's value is its average."""

    def __init__(self, level) -> None:
        self.level = level
        self.calls: list[tuple[float, float]] = []

    def value(self, metric, start, end):
        self.calls.append((start, end))
        points = [self.level(start + (i + 0.5) * (end - start) / 100) for i in range(100)]
        if any(p is None for p in points):
            return None
        return sum(points) / len(points)

    def series(self, metric, start, end, step):
        return [(start + i * step, self.level(start + i * step)) for i in range(int((end - start) / step))]


DEPLOY, ACTIVATED = 10_000.0, 10_030.0


def _checkouts(t: float) -> float:
    """180 a minute; a push at ACTIVATED breaks 30% of checkouts; the fix lands 150 s later."""
    return 126.0 if ACTIVATED <= t < ACTIVATED + 150 else 180.0


def test_watch_sees_a_30_percent_breakage_within_a_minute_and_the_fix(tmp_path):
    clock = FakeClock(ACTIVATED)
    events: list[WatchVerdict] = []
    source = RateSource(_checkouts)
    watch = Watch(_inventory(tmp_path), {"checkouts": source}, "d-1", DEPLOY, events.append, clock, sleep=clock.sleep)
    halted_at = []
    original = watch.poll

    def poll(final=False):
        out = original(final)
        if watch.degraded() and not halted_at:
            halted_at.append(clock.now)
        return out

    watch.poll = poll
    final = watch.run()
    assert [(e.ts - ACTIVATED, e.verdict, e.final) for e in events] == [
        (20, DEGRADED, False),  # the first judgement, 20 s after activation
        (175, OK, False),  # the fix at 150 s: at 170 the window is exactly at the limit, at 175 above it
        (300, OK, True),
    ]
    assert halted_at == [ACTIVATED + 20]
    assert events[0].summary == "checkouts/min 180 → 126, -30%, limit -20%"
    assert events[0].deploy_id == "d-1" and events[0].metric == "checkouts"
    assert final == [events[-1]] and not watch.degraded()
    assert source.calls[0] == (DEPLOY - 300, DEPLOY)  # the baseline: the 300 s before the deploy
    assert source.calls[1] == (ACTIVATED, ACTIVATED + 20)  # only time since activation counts
    assert (ACTIVATED + 240, ACTIVATED + 300) in source.calls  # then the last 60 s
    assert from_json(to_json(events[0])) == events[0]


def test_watch_emits_only_changes_and_a_final_verdict_per_metric(tmp_path):
    clock = FakeClock(ACTIVATED)
    events: list[WatchVerdict] = []
    sources = {
        "checkouts": RateSource(lambda t: 180.0),
        "checkout p95": RateSource(lambda t: None),
        "errors": RateSource(lambda t: 10.0 if t >= ACTIVATED else 2.0),
    }
    inventory = _inventory(tmp_path, key=(CHECKOUTS, LATENCY, ERRORS), watch=120)
    watch = Watch(inventory, sources, "d-2", DEPLOY, events.append, clock, sleep=clock.sleep)
    watch.run()
    changes = [(e.metric, e.verdict) for e in events if not e.final]
    finals = [(e.metric, e.verdict, e.dry_run) for e in events if e.final]
    assert changes == [("checkouts", OK), ("checkout p95", NO_DATA), ("errors", DEGRADED)]
    assert finals == [("checkouts", OK, False), ("checkout p95", NO_DATA, False), ("errors", DEGRADED, True)]
    assert all(e.ts == ACTIVATED + 120 for e in events if e.final)
    assert not watch.degraded()  # the degraded rule is a dry run: it reports, it never halts
    assert watch.verdicts()["errors"].verdict == DEGRADED


def test_a_failing_source_is_no_data_with_its_reason(tmp_path):
    class Broken(MetricSource):
        def value(self, metric, start, end):
            raise RuntimeError("Prometheus http://127.0.0.1:9/api/v1/query: cannot connect:\nrefused")

        def series(self, metric, start, end, step):
            return []

    clock = FakeClock(ACTIVATED)
    events: list[WatchVerdict] = []
    Watch(_inventory(tmp_path, watch=30), Broken(), "d-3", DEPLOY, events.append, clock, sleep=clock.sleep).run()
    assert [(e.verdict, e.final) for e in events] == [(NO_DATA, False), (NO_DATA, True)]
    # the URL in the reason is cut to its host (URLs carry tokens)
    assert events[0].summary == "checkouts: Prometheus http://127.0.0.1:9/…: cannot connect: refused"


def test_watch_in_a_thread_on_the_real_clock_stops_early_with_final_verdicts(tmp_path):
    events: list[WatchVerdict] = []
    lock = threading.Lock()

    def emit(event):
        with lock:
            events.append(event)

    watch = Watch(
        _inventory(tmp_path), RateSource(lambda t: 180.0), "d-4", time.time() - 1, emit, poll=0.02, min_window=0.05
    ).start()
    time.sleep(0.2)
    assert [e.verdict for e in events] == [OK]
    t0 = time.monotonic()
    watch.stop()
    assert watch.join(timeout=2)
    assert time.monotonic() - t0 < 1
    assert [(e.verdict, e.final) for e in events] == [(OK, False), (OK, True)]


def test_watch_reads_the_statsd_store_and_halts_within_a_minute(tmp_path):
    """Three checkouts a second, with the jitter of real traffic, before the push and 2.1 a
    second after it: the watch over the real store says degraded well within 60 s."""
    import random

    rng = random.Random(7)
    inventory = _inventory(tmp_path)
    writer = StoreWriter(inventory.state_dir / "metrics.sqlite")
    agg = Aggregator()
    start, activated, end = int(DEPLOY - 300), int(ACTIVATED), int(ACTIVATED + 120)
    for ts in range(start, end):
        rate = 3.0 if ts < activated else 2.1
        t = float(ts)
        while True:
            t += rng.expovariate(rate)
            if t >= ts + 1:
                break
            agg.add(Sample("shop.checkouts", "c", 1.0), now=t)
    writer.write(agg.take(), list(range(start, end)))
    writer.close()

    clock = FakeClock(ACTIVATED)
    events: list[WatchVerdict] = []
    watch = Watch(inventory, None, "d-5", DEPLOY, events.append, clock, sleep=clock.sleep, duration=120)
    assert isinstance(watch._sources["checkouts"], StatsdSource)
    watch.run()
    first_degraded = next(e.ts for e in events if e.verdict == DEGRADED)
    assert first_degraded - ACTIVATED <= 60
    assert events[-1].final and events[-1].verdict == DEGRADED
    assert events[-1].baseline == pytest.approx(180, rel=0.1)


def test_the_metrics_package_imports_no_textual():
    code = (
        "import sys\n"
        "import console.metrics.source, console.metrics.backends, console.metrics.statsd, console.metrics.store\n"
        "import console.metrics.prometheus, console.metrics.watch, console.metrics.markers\n"
        "import console.metrics.statsd.cli\n"
        "assert 'textual' not in sys.modules, sorted(k for k in sys.modules if 'textual' in k)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
