"""The console over a working day, measured: what `invoke bench.soak` runs.

The console runs on the real engine service against a lab fleet (the task sets it up),
headless at 160x45, while a script uses it as a person would, in rounds until the time is
up: forty tab switches, the dialogs (help, lock, the deploy plan, a past deploy, a host),
and every few rounds a real deploy of a new reviewed commit, confirmed in the console and
followed to its end, with more tab switches while it runs. Between rounds it sits idle.

It measures:
- key-to-paint latency: from a key sent as a terminal sends it (`driver.send_message`, as
  `bench.console` does) to the first frame that shows its effect (the tab in front, the
  dialog open), each frame serialised for the terminal as a real one would be;
- CPU (all threads of the process) and resident memory, sampled every few seconds;
- idle CPU, over the idle windows only, each from `SETTLE` s after the last key: that
  first second (the key's own paint, and the full collection console/tui/collector.py
  runs once input has paused for 0.5 s, the garbage of the round before) is measured
  apart, as CPU time, so the window says what a console left alone costs;
- the same tab switches and idle CPU of a bare Textual app with four tabs and a footer,
  first, in the same process: the baseline.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, TabbedContent, TabPane

#: The tabs in the order the script visits them, with their keys.
TABS = (("1", "queue"), ("2", "fleet"), ("3", "metrics"), ("4", "history"))


@dataclass
class Sample:
    """One point of the timeline."""

    elapsed: float  # seconds since the soak began
    rss: float  # MB, now (not the peak)
    cpu: float  # share of one core since the previous sample
    doing: str  # what the script was doing


@dataclass
class SoakReport:
    """What `soak` measured; times in ms, memory in MB, CPU as a share of one core."""

    seconds: float = 0.0
    switches: list[float] = field(default_factory=list)  # key-to-paint of tab switches, idle console
    switches_deploying: list[float] = field(default_factory=list)  # the same while a deploy runs
    dialogs: dict[str, list[float]] = field(default_factory=dict)  # dialog -> key-to-paint of its opening
    idle_cpu: list[float] = field(default_factory=list)  # per idle window
    settle_cpu: list[float] = field(default_factory=list)  # ms of CPU in the `SETTLE` s before each window
    samples: list[Sample] = field(default_factory=list)
    deploys: list[tuple[str, float]] = field(default_factory=list)  # (result, seconds)
    bare_switches: list[float] = field(default_factory=list)
    bare_idle_cpu: list[float] = field(default_factory=list)
    widgets: tuple[int, int] = (0, 0)  # widgets alive in the process: after the first round, at the end
    rounds: int = 0
    warm: float = 0.0  # seconds into the soak when the first round ended (the warm-up)

    def rss_growth_per_hour(self) -> float:
        """MB per hour: the least-squares slope of RSS over time, after the first round."""
        points = [(s.elapsed, s.rss) for s in self.samples if s.elapsed > self.warm]
        if len(points) < 3 or points[-1][0] - points[0][0] < 60:
            return float("nan")
        mean_t = statistics.fmean(t for t, _ in points)
        mean_m = statistics.fmean(m for _, m in points)
        slope = sum((t - mean_t) * (m - mean_m) for t, m in points) / sum((t - mean_t) ** 2 for t, _ in points)
        return slope * 3600


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _widgets(kind: type) -> int:
    """Objects of `kind` alive in this process (shown, or leaked)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def percentile(values: list[float], p: float) -> float:
    """The `p` quantile (0..1) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


class Frames:
    """Watches an app's frames: `after(key, shown)` sends a key and returns the ms until
    the first frame painted while `shown()` holds. Each frame is also serialised for a
    terminal (what the headless driver leaves out), so its cost is counted."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._shown: Callable[[], bool] | None = None
        self._at: float | None = None
        display = app._display

        def spy(screen, update) -> None:
            display(screen, update)
            if update is not None and hasattr(update, "render_segments"):
                update.render_segments(app.console)
            if self._shown is not None and self._at is None and self._shown():
                self._at = time.perf_counter()

        setattr(app, "_display", spy)  # noqa: B010 - a measuring spy on a private method, this process only

    def send(self, key: str) -> None:
        character = {"question_mark": "?", "enter": "\r", "escape": "\x1b", "space": " "}.get(key, key)
        event = events.Key(key, character if len(character) == 1 else None)
        event.set_sender(self.app)
        self.app._driver.send_message(event)  # type: ignore[union-attr]  # run_test's driver is set

    async def after(self, key: str, shown: Callable[[], bool], timeout: float = 10.0) -> float:
        self._shown, self._at = shown, None
        t0 = time.perf_counter()
        self.send(key)
        while self._at is None and time.perf_counter() - t0 < timeout:
            await asyncio.sleep(0.0005)
        self._shown = None
        return ((self._at or time.perf_counter()) - t0) * 1000


#: Seconds after the last key before an idle window starts (the module doc says why).
SETTLE = 1.0


async def settled_idle_cpu(report: SoakReport, seconds: float) -> float:
    """`idle_cpu` over `seconds`, from `SETTLE` s on; the CPU of that first second goes
    to `report.settle_cpu`."""
    report.settle_cpu.append(await idle_cpu(SETTLE) * SETTLE * 1000)
    return await idle_cpu(seconds)


async def idle_cpu(seconds: float) -> float:
    """CPU of the whole process over `seconds` of doing nothing, as a share of one core."""
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


class BareTabs(App[None]):
    """The baseline: four tabs of tables and a footer, nothing else."""

    BINDINGS = [Binding(key, f"show('{tab}')", tab.title()) for key, tab in TABS]

    def compose(self) -> ComposeResult:
        with TabbedContent():
            for _, tab in TABS:
                with TabPane(tab.title(), id=tab):
                    yield DataTable()
        yield Footer()

    def action_show(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab


def _in_front(tabs: TabbedContent, tab: str) -> Callable[[], bool]:
    return lambda: tabs.active == tab


async def _switches(app: App, frames: Frames, count: int, out: list[float], gap: float = 0.15) -> None:
    tabs = app.screen.query_one(TabbedContent)
    for i in range(count):
        key, tab = TABS[(i + 1) % len(TABS)]
        if tabs.active == tab:
            continue
        out.append(await frames.after(key, _in_front(tabs, tab)))
        await asyncio.sleep(gap)


async def _baseline(report: SoakReport, switches: int, idle: float) -> None:
    """The bare app's tab switches and idle CPU, in this process."""
    app = BareTabs()
    if "TEXTUAL_ANIMATIONS" not in os.environ:
        app.animation_level = "none"  # as the console has it
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        await _switches(app, Frames(app), switches, report.bare_switches)
        report.bare_idle_cpu.append(await idle_cpu(SETTLE + idle))  # nothing deferred: no collector


async def soak(
    service,
    *,
    seconds: float,
    deploy_every: int = 3,
    idle: float = 10.0,
    sample_every: float = 5.0,
    new_change: Callable[[], str] | None = None,
    echo: Callable[[str], None] = print,
) -> SoakReport:
    """Use the console on `service` for `seconds`, as the module doc says; `new_change()`
    commits a reviewed change to trunk and returns its SHA (None: no deploys)."""
    from textual.widget import Widget

    from console.tui.app import ConsoleApp
    from console.tui.screens.confirm_deploy import ConfirmDeploy
    from console.tui.screens.deploy_detail import DeployDetailScreen
    from console.tui.screens.help import HelpScreen
    from console.tui.screens.host_detail import HostDetailScreen
    from console.tui.screens.lock import LockScreen
    from console.tui.widgets.queue_table import QueueTable

    report = SoakReport()
    echo("  baseline: a bare Textual app with four tabs and a footer ...")
    await _baseline(report, 40, idle)
    app = ConsoleApp(service)
    began = time.perf_counter()
    doing = ["starting"]

    async def sampler() -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        while True:
            await asyncio.sleep(sample_every)
            now, used = time.perf_counter(), time.process_time()
            report.samples.append(Sample(now - began, rss_mb(), (used - cpu) / (now - wall), doing[0]))
            wall, cpu = now, used

    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        frames = Frames(app)
        task = asyncio.create_task(sampler())
        try:
            await pilot.pause(3.0)

            async def dialog(key: str, kind: type, close: str = "escape") -> None:
                opened = await frames.after(key, lambda: isinstance(app.screen, kind))
                report.dialogs.setdefault(kind.__name__, []).append(opened)
                if not isinstance(app.screen, kind):
                    said = [n.message for n in app._notifications][-1:]
                    echo(f"  {kind.__name__} did not open after {key}: {said[0] if said else 'nothing said'}")
                    return
                await pilot.pause(0.3)
                await pilot.press(close)
                await pilot.pause(0.2)

            async def queued(sha: str) -> None:
                """Until the queue shows `sha` (trunk is fetched at most every 10 s)."""
                table = screen.query_one(QueueTable)
                deadline = time.monotonic() + 60
                while not any(c.sha == sha for c in table.changes) and time.monotonic() < deadline:
                    await pilot.press("r")
                    await pilot.pause(2.0)

            async def deploy(sha: str) -> None:
                await pilot.press("1")
                await queued(sha)
                table = screen.query_one(QueueTable)
                await pilot.press(*["up"] * len(table.changes))  # the newest: it ships every queued one
                before = screen.feed.deploy_id if screen.feed else None
                await pilot.press("d")
                while not (isinstance(app.screen, ConfirmDeploy) and app.screen.query("#confirm")):
                    await pilot.pause(0.1)
                if app.screen.refused:
                    await pilot.press(*"soak: ships the queue as it is")
                await pilot.press("enter")
                t0 = time.monotonic()
                while (screen.feed is None or screen.feed.deploy_id == before) and time.monotonic() - t0 < 60:
                    await pilot.pause(0.2)
                doing[0] = "deploying"
                while not screen.done_seen and time.monotonic() - t0 < 600:
                    await _switches(app, frames, 4, report.switches_deploying)
                feed = screen.feed
                done = feed.view.done if feed else None
                report.deploys.append((done.result if done else "unfinished", time.monotonic() - t0))

            while time.perf_counter() - began < seconds:
                report.rounds += 1
                # a new commit each round: the queue always has one to open the deploy plan for
                sha = new_change() if new_change is not None else None
                await pilot.press("r")
                doing[0] = "tabs"
                await _switches(app, frames, 40, report.switches)
                doing[0] = "dialogs"
                await pilot.press("1")
                if sha is not None:
                    await queued(sha)
                await dialog("question_mark", HelpScreen)
                await dialog("k", LockScreen)
                await dialog("d", ConfirmDeploy)
                await pilot.press("4")
                await dialog("enter", DeployDetailScreen)
                await pilot.press("2")
                await dialog("enter", HostDetailScreen)
                if sha is not None and report.rounds % deploy_every == 0:
                    await deploy(sha)
                doing[0] = "idle"
                await pilot.press(TABS[report.rounds % len(TABS)][0])
                report.idle_cpu.append(await settled_idle_cpu(report, idle))
                if report.rounds == 1:
                    report.widgets = (_widgets(Widget), 0)
                    report.warm = time.perf_counter() - began
                echo(
                    f"  round {report.rounds}: {time.perf_counter() - began:5.0f} s, rss {rss_mb():5.1f} MB, "
                    f"idle cpu {report.idle_cpu[-1]:.1%}, tab p95 {percentile(report.switches, 0.95):.0f} ms"
                )
            report.widgets = (report.widgets[0], _widgets(Widget))
        finally:
            task.cancel()
    report.seconds = time.perf_counter() - began
    return report
