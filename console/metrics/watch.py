"""The watch after the push: each key metric against its baseline from before the deploy.

`judge(metric, baseline, current)` is the rule, a pure function: ok, degraded or no data, with
the numbers ("checkouts/min 41 → 28, -32%, limit -20%"). A change in the bad direction that
reaches the limit is degraded.

`Watch` runs it: from activation, for `metrics.watch` seconds, every `poll` seconds it compares
each key metric over the last `window` seconds (only the time since activation counts, and
nothing is judged before `min_window` seconds of it) with the metric over the `metrics.baseline`
seconds before the deploy started. It emits a `WatchVerdict` whenever a metric's verdict changes
and a final one per metric at the end. `degraded()` tells the engine to halt rolling activation;
a dry-run rule reports like any other but never counts there.

At three checkouts a second a 60 s window holds about 180; a 30% drop (to about 126) is below
the 20% limit (144) by more than two standard deviations of the count, so it is seen well
within the first minute, and an unchanged rate rarely looks degraded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from console.core.events import Event, WatchVerdict
from console.metrics.backends import source_for
from console.metrics.source import MetricSource

if TYPE_CHECKING:
    from console.config.inventory import Inventory, KeyMetric

OK, DEGRADED, NO_DATA = "ok", "degraded", "no data"


@dataclass(frozen=True)
class Judgement:
    """One rule's verdict on one comparison."""

    verdict: str  # ok, degraded or no data
    summary: str  # "checkouts/min 41 → 28, -32%, limit -20%"
    baseline: float | None
    current: float | None
    change: float | None  # relative: -0.32 for -32%


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}"


def judge(metric: KeyMetric, baseline: float | None, current: float | None) -> Judgement:
    """The verdict of `metric`'s rule on a baseline and a current value (pure)."""
    if metric.unit.startswith("/") or not metric.unit:
        label, suffix = f"{metric.name}{metric.unit}", ""
    else:
        label, suffix = metric.name, ("%" if metric.unit == "%" else f" {metric.unit}")
    sign = "-" if metric.bad == "down" else "+"
    limit = f"limit {sign}{metric.limit * 100:g}%"
    dry = ", dry run" if metric.dry_run else ""

    def show(v: float | None) -> str:
        return "?" if v is None else f"{_num(v)}{suffix}"

    numbers = f"{label} {show(baseline)} → {show(current)}"
    if baseline is None or current is None:
        why = "no baseline" if baseline is None else "no current data"
        return Judgement(NO_DATA, f"{numbers}, {why}{dry}", baseline, current, None)
    if baseline == 0:
        if current == 0:
            return Judgement(OK, f"{numbers}, +0%, {limit}{dry}", baseline, current, 0.0)
        if metric.bad == "down":  # nothing to lose: no baseline to judge a drop against
            return Judgement(NO_DATA, f"{numbers}, baseline is 0{dry}", baseline, current, None)
        return Judgement(DEGRADED, f"{numbers}, new, {limit}{dry}", baseline, current, None)
    change = (current - baseline) / abs(baseline)
    bad_change = -change if metric.bad == "down" else change
    verdict = DEGRADED if bad_change >= metric.limit - 1e-9 else OK
    return Judgement(verdict, f"{numbers}, {change * 100:+.0f}%, {limit}{dry}", baseline, current, change)


class Watch:
    """Watches the inventory's key metrics after activation and emits `WatchVerdict` events.

    `sources` is one `MetricSource` for every metric, or a mapping from metric name to source;
    metrics it does not cover use `source_for(inventory, metric)`. `clock` and `sleep` are
    injectable so a test can run five minutes in a millisecond.
    """

    def __init__(
        self,
        inventory: Inventory,
        sources: MetricSource | Mapping[str, MetricSource] | None = None,
        deploy_id: str = "",
        baseline_end: float = 0.0,
        emit: Callable[[Event], None] = lambda event: None,
        clock: Callable[[], float] = time.time,
        *,
        sleep: Callable[[float], object] | None = None,
        window: float = 60.0,
        poll: float = 5.0,
        min_window: float = 20.0,
        duration: float | None = None,
        activated: float | None = None,
    ) -> None:
        self.inventory = inventory
        self.metrics: tuple[KeyMetric, ...] = inventory.metrics.key
        self.deploy_id = deploy_id
        self.baseline_end = baseline_end
        self.baseline_start = baseline_end - inventory.metrics.baseline
        self.emit = emit
        self.clock = clock
        self.window = window
        self.poll_every = poll
        self.duration = inventory.metrics.watch if duration is None else duration
        self.min_window = min(min_window, self.duration)
        self.activated = activated
        self._stopped = threading.Event()
        self._sleep = sleep or self._stopped.wait
        self._lock = threading.Lock()
        self._latest: dict[str, WatchVerdict] = {}
        self._baselines: dict[str, float | None] = {}
        self._thread: threading.Thread | None = None
        self._sources: dict[str, MetricSource] = {}
        for metric in self.metrics:
            if isinstance(sources, MetricSource):
                self._sources[metric.name] = sources
            elif sources is not None and metric.name in sources:
                self._sources[metric.name] = sources[metric.name]
            else:
                self._sources[metric.name] = source_for(inventory, metric)

    # -- what the engine asks -------------------------------------------------------------

    def degraded(self) -> bool:
        """Whether any rule that may halt (not dry run) is degraded now."""
        with self._lock:
            return any(v.verdict == DEGRADED and not v.dry_run for v in self._latest.values())

    def verdicts(self) -> dict[str, WatchVerdict]:
        """The latest verdict of each metric judged so far."""
        with self._lock:
            return dict(self._latest)

    # -- running ----------------------------------------------------------------------------

    def check(self, metric: KeyMetric, now: float) -> Judgement:
        """Judge one metric now (sources that fail count as no data, with their error)."""
        source = self._sources[metric.name]
        try:
            baseline = self._baselines.get(metric.name)
            if baseline is None:
                baseline = source.value(metric, self.baseline_start, self.baseline_end)
                self._baselines[metric.name] = baseline
            activated = self.activated if self.activated is not None else now
            start = max(now - self.window, activated)  # only time since activation counts
            current = source.value(metric, start, now)
        except Exception as exc:  # noqa: BLE001 - a broken source is "no data", never a crash
            text = " ".join(str(exc).split()) or type(exc).__name__
            dry = ", dry run" if metric.dry_run else ""
            return Judgement(NO_DATA, f"{metric.name}: {text}{dry}", None, None, None)
        return judge(metric, baseline, current)

    def poll(self, final: bool = False) -> list[WatchVerdict]:
        """Judge every metric now; emit and return the verdicts that changed (all, if final)."""
        now = self.clock()
        if self.activated is None:
            self.activated = now
        if not final and now - self.activated < self.min_window:
            return []
        out = []
        for metric in self.metrics:
            j = self.check(metric, now)
            with self._lock:
                previous = self._latest.get(metric.name)
                if not final and previous is not None and previous.verdict == j.verdict:
                    continue
                event = WatchVerdict(
                    self.deploy_id,
                    ts=now,
                    metric=metric.name,
                    verdict=j.verdict,
                    summary=j.summary,
                    baseline=j.baseline,
                    current=j.current,
                    change=j.change,
                    dry_run=metric.dry_run,
                    final=final,
                )
                self._latest[metric.name] = event
            out.append(event)
            self.emit(event)
        return out

    def run(self) -> list[WatchVerdict]:
        """Watch until the window ends (or `stop()`), then emit and return the final verdicts."""
        if self.activated is None:
            self.activated = self.clock()
        end = self.activated + self.duration
        while not self._stopped.is_set():
            if self.clock() >= end:
                break
            self.poll()
            remaining = end - self.clock()
            if remaining <= 0:
                break
            self._sleep(min(self.poll_every, remaining))
        return self.poll(final=True)

    def start(self) -> Watch:
        """Run the watch in a daemon thread; returns at once."""
        if self.activated is None:
            self.activated = self.clock()
        self._thread = threading.Thread(target=self.run, name=f"watch-{self.deploy_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch early; the final verdicts are still emitted."""
        self._stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the watch thread; True when it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True
