"""The main screen: header, then tabs for the queue, the fleet, the key metrics and the
history, and the footer with every binding.

All calls to the service run in thread workers. A deploy being followed is folded into a
`DeployFeed` on its worker thread; a 100 ms timer takes one coalesced batch from it and
repaints the grid, legend, phase bars and header once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Footer, RichLog, Static, TabbedContent, TabPane

from console.core.errors import ConsoleError
from console.core.events import PHASES, WatchVerdict
from console.core.progress import HostView
from console.core.text import short
from console.tui.backend import duration
from console.tui.feed import DeployFeed, FleetBatch
from console.tui.screens.confirm_deploy import ConfirmDeploy, DeployChoice
from console.tui.screens.deploy_detail import DeployDetailScreen
from console.tui.screens.host_detail import HostDetailScreen
from console.tui.screens.lock import LockRequest, LockScreen
from console.tui.widgets.commit_detail import CommitDetail
from console.tui.widgets.fleet_grid import STATE_COLORS, FleetGrid
from console.tui.widgets.fleet_legend import FleetLegend
from console.tui.widgets.history_table import HistoryTable
from console.tui.widgets.metric_graph import MetricGraph
from console.tui.widgets.phase_bars import PhaseBars
from console.tui.widgets.queue_table import QueueTable
from console.tui.widgets.status_header import StatusHeader


def _message(err: BaseException) -> str:
    """One readable line for any error (ConsoleError already is one)."""
    if isinstance(err, ConsoleError):
        return str(err)
    return f"{type(err).__name__}: {err}".splitlines()[0]


class ConsoleScreen(Screen[None]):
    """Queue, fleet, metrics and history of one environment."""

    DEFAULT_CSS = """
    ConsoleScreen {
        overflow: hidden hidden;
    }
    ConsoleScreen > TabbedContent {
        height: 1fr;
    }
    ConsoleScreen > TabbedContent > ContentSwitcher {
        height: 1fr;
    }
    ConsoleScreen #queue-bar, ConsoleScreen #fleet-bar {
        height: auto;
        padding: 0 1;
    }
    ConsoleScreen #queue-bar Button {
        margin-right: 1;
        min-width: 12;
    }
    ConsoleScreen QueueTable {
        height: 1fr;
    }
    ConsoleScreen CommitDetail {
        height: 14;
    }
    ConsoleScreen #deploy-line {
        height: 1;
        padding: 0 1;
    }
    ConsoleScreen #host-line {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    ConsoleScreen PhaseBars {
        margin-top: 1;
    }
    ConsoleScreen #activity {
        height: 1fr;
        min-height: 3;
        border-top: solid $primary-darken-2;
        padding: 0 1;
    }
    ConsoleScreen #metrics-hint {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    ConsoleScreen TabPane {
        padding: 0;
    }
    """

    AUTO_FOCUS = "QueueTable"

    BINDINGS = [
        Binding("d", "deploy", "Deploy"),
        Binding("l", "lock", "Lock"),
        Binding("a", "attach", "Attach"),
        Binding("r", "refresh", "Refresh"),
        Binding("1", "tab('queue')", "Queue"),
        Binding("2", "tab('fleet')", "Fleet"),
        Binding("3", "tab('metrics')", "Metrics"),
        Binding("4", "tab('history')", "History"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.feed: DeployFeed | None = None
        self._stop = threading.Event()
        self.hosts: dict[str, HostView] = {}  # UI-side copies, for the host detail
        self.phases: tuple[str, ...] = PHASES
        self.verdicts: dict[str, WatchVerdict] = {}
        self.batches = 0  # batches applied (tests and the bench read it)
        self.events = 0  # events folded into the view shown
        self.done_seen = False
        self._flush_timer: Timer | None = None
        self._failed_logged: set[str] = set()

    @property
    def service(self) -> Any:
        return self.app.service  # type: ignore[attr-defined]

    def now(self) -> float:
        return self.app.clock()  # type: ignore[attr-defined]

    # -- layout -------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusHeader()
        with TabbedContent(initial="queue"):
            with TabPane("Queue [1]", id="queue"):
                with Horizontal(id="queue-bar"):
                    yield Button("Deploy (d)", id="deploy", variant="success")
                    yield Button("Lock (l)", id="lock", variant="warning")
                    yield Button("Refresh (r)", id="refresh")
                yield QueueTable()
                yield CommitDetail()
            with TabPane("Fleet [2]", id="fleet"):
                yield Static(Text("No deploy yet. Press d on the queue to deploy.", style="dim"), id="deploy-line")
                yield FleetGrid(self.service.host_names)
                yield Static("", id="host-line")
                yield FleetLegend(counts={"waiting": len(self.service.host_names)})
                yield PhaseBars()
                yield RichLog(id="activity", max_lines=500, markup=False, wrap=False)
            with TabPane("Metrics [3]", id="metrics"):
                yield Static(
                    f"last {self.app.metrics_window // 60:.0f} minutes; orange lines mark deploys",  # type: ignore[attr-defined]
                    id="metrics-hint",
                )
                with VerticalScroll(id="graphs"):
                    for i, metric in enumerate(self.service.key_metrics):
                        yield MetricGraph(metric, id=f"metric-{i}")
            with TabPane("History [4]", id="history"):
                yield HistoryTable()
        yield Footer()

    def on_mount(self) -> None:
        header = self.query_one(StatusHeader)
        header.environment = self.service.environment
        header.hosts = len(self.service.host_names)
        header.now = self.now()
        self._flush_timer = self.set_interval(self.app.flush_interval, self.flush, pause=True)  # type: ignore[attr-defined]
        self.refresh_all()
        self.set_interval(self.app.poll_interval, self.poll)  # type: ignore[attr-defined]
        self.set_interval(self.app.metrics_interval, self.load_metrics)  # type: ignore[attr-defined]

    def on_unmount(self) -> None:
        self._stop.set()

    # -- background calls ---------------------------------------------------------
    def _notify_error(self, err: BaseException) -> None:
        self.app.call_from_thread(self.notify, _message(err), severity="error", timeout=8)

    def _ui(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return self.app.call_from_thread(fn, *args, **kw)

    def refresh_all(self) -> None:
        self.poll()
        self.load_queue()
        self.load_history()
        self.load_metrics()

    @work(thread=True, exclusive=True, group="poll")
    def poll(self) -> None:
        """Live revision, lock, and a deploy running elsewhere to attach to."""
        try:
            revision = self.service.live_revision()
            lock = self.service.lock_status()
            running = self.service.running_deploy()
        except Exception as err:  # noqa: BLE001 - shown to the person, never a traceback
            self._notify_error(err)
            return
        self._ui(self._polled, revision, lock, running)

    def _polled(self, revision: str | None, lock: Any, running: str | None) -> None:
        header = self.query_one(StatusHeader)
        header.revision, header.lock_info, header.now = revision, lock, self.now()
        if running and (self.feed is None or self.feed.deploy_id != running):
            self.attach(running)

    @work(thread=True, exclusive=True, group="queue")
    def load_queue(self) -> None:
        try:
            changes = self.service.queue()
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
            return
        self._ui(self._show_queue, changes)

    def _show_queue(self, changes: list[Any]) -> None:
        table = self.query_one(QueueTable)
        table.show(changes, self.now())
        if not changes:
            self.query_one(CommitDetail).show(None)

    @work(thread=True, exclusive=True, group="history")
    def load_history(self) -> None:
        try:
            records = self.service.history(50)
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
            return
        self._ui(self._show_history, records)

    def _show_history(self, records: list[Any]) -> None:
        self.query_one(HistoryTable).show(records, self.now())

    @work(thread=True, exclusive=True, group="metrics")
    def load_metrics(self) -> None:
        """Samples, deploy markers and verdicts for every key metric."""
        now = self.now()
        window = self.app.metrics_window  # type: ignore[attr-defined]
        step = max(1.0, window / 120)
        try:
            markers = self.service.markers(now - window)
            deploy_id = self.feed.deploy_id if self.feed else None
            if deploy_id is None:
                records = self.service.history(1)
                deploy_id = str(records[0].id) if records else None
            verdicts: dict[str, Any] = {}
            if deploy_id:
                for verdict in self.service.verdicts(deploy_id):
                    verdicts[verdict.metric] = verdict
            samples = [
                (i, self.service.metric_series(m, now - window, now, step), verdicts.get(m.name))
                for i, m in enumerate(self.service.key_metrics)
            ]
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
            return
        self._ui(self._show_metrics, samples, markers, now)

    def _show_metrics(self, samples: list[tuple[int, Any, Any]], markers: Any, now: float) -> None:
        for i, series, verdict in samples:
            verdict = self.verdicts.get(self.service.key_metrics[i].name) or verdict
            self.query_one(f"#metric-{i}", MetricGraph).show(series, markers, verdict, now)

    # -- following a deploy -------------------------------------------------------
    def attach(self, deploy_id: str) -> None:
        """Show `deploy_id` live: fold its events from the start, then follow."""
        if self.feed is not None and self.feed.deploy_id == deploy_id and not self.feed.finished:
            return
        self._stop.set()
        self._stop = threading.Event()
        self.feed = DeployFeed(deploy_id)
        self.done_seen = False
        self.hosts = {}
        self.verdicts = {}
        self._failed_logged = set()
        self.query_one("#activity", RichLog).clear()
        self.query_one("#deploy-line", Static).update(Text(f"attaching to {deploy_id}…", style="italic"))
        self._follow(self.feed, self._stop)
        if self._flush_timer is not None:
            self._flush_timer.resume()

    @work(thread=True, exclusive=True, group="follow")
    def _follow(self, feed: DeployFeed, stop: threading.Event) -> None:
        try:
            for event in self.service.follow(feed.deploy_id, stop):
                feed.fold(event)
                if stop.is_set():
                    break
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
        finally:
            feed.finished = True

    def flush(self) -> None:
        """Take one coalesced batch from the feed and repaint (every 100 ms)."""
        feed = self.feed
        if feed is None:
            return
        batch = feed.take()
        if batch is None:
            if feed.finished and self._flush_timer is not None:
                self._flush_timer.pause()
            return
        self.apply_batch(batch)

    def apply_batch(self, batch: FleetBatch) -> None:
        self.batches += 1
        self.events = batch.events
        grid = self.query_one(FleetGrid)
        if batch.reset and batch.started is not None:
            self.hosts = {}
            grid.set_hosts(batch.started.hosts)
            self.phases = tuple(batch.started.phases)
        self.hosts.update(batch.hosts)
        grid.update_states({n: h.state for n, h in batch.hosts.items()})
        self.query_one(FleetLegend).show(batch.counts)
        self.query_one(PhaseBars).show(batch.phases, batch.phase_done)
        header = self.query_one(StatusHeader)
        header.counts = dict(batch.counts)
        self.verdicts.update(batch.verdicts)
        log = self.query_one("#activity", RichLog)
        for notice in batch.notices[-20:]:
            style = {"error": "bold #ff3f3f", "warning": "#d7af00"}.get(notice.level, "")
            log.write(Text(notice.message, style=style))
        for name, host in batch.hosts.items():
            if host.state == "failed" and name not in self._failed_logged:
                self._failed_logged.add(name)
                if len(self._failed_logged) <= 50:
                    log.write(Text(f"{name} failed in {host.phase}: {host.reason}", style="#ff3f3f"))
        line = self._deploy_line(batch)
        self.query_one("#deploy-line", Static).update(line)
        header.deploy = line.plain
        if batch.done is not None and not self.done_seen:
            self.done_seen = True
            self._deploy_finished(batch)
        highlighted = grid.current_host
        if highlighted is not None and highlighted in batch.hosts:
            self._show_host_line(highlighted)

    def _deploy_line(self, batch: FleetBatch) -> Text:
        s, d = batch.started, batch.done
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{batch.deploy_id} ", style="bold")
        if s is None:
            text.append("waiting for the deploy to start", style="italic")
            return text
        text.append(f"{s.action} {short(s.revision, '-')} by {s.user}, {s.commits} commits, ")
        text.append(f"{len(s.chunks)} chunks ")
        if d is None:
            running = [p.name for p in batch.phases.values() if p.state == "running"]
            text.append(f"running {', '.join(running) or ''} ", style="bold #5f87ff")
            text.append(duration(max(0.0, batch.last_ts - s.ts)), style="dim")
        else:
            style = {"ok": "bold #5fd75f", "partial": "bold #d7af00"}.get(d.result, "bold #ff3f3f")
            text.append(f"{d.result}", style=style)
            text.append(f" in {duration(d.seconds)}")
            if d.hosts_failed:
                text.append(f", {len(d.hosts_failed)} failed", style="#ff3f3f")
        if s.override:
            text.append(f"  override: {s.override}", style="#ff8700")
        return text

    def _deploy_finished(self, batch: FleetBatch) -> None:
        d = batch.done
        assert d is not None
        message = f"{batch.deploy_id} {d.result} in {duration(d.seconds)}"
        if d.hosts_failed:
            message += f"; {len(d.hosts_failed)} failed"
        self.notify(message, severity="information" if d.result == "ok" else "warning", timeout=8)
        self.poll()
        self.load_queue()
        self.load_history()
        self.load_metrics()

    # -- events from widgets ------------------------------------------------------
    @on(QueueTable.ChangeHighlighted)
    def _change_highlighted(self, event: QueueTable.ChangeHighlighted) -> None:
        self.query_one(CommitDetail).show(event.change, event.included)

    @on(FleetGrid.HostHighlighted)
    def _host_highlighted(self, event: FleetGrid.HostHighlighted) -> None:
        if event.grid is self.query_one(FleetGrid):
            self._show_host_line(event.host)

    def _show_host_line(self, name: str) -> None:
        host = self.hosts.get(name)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{name} ", style="bold")
        if host is None:
            text.append("waiting", style=STATE_COLORS["waiting"])
        else:
            text.append(host.state, style=STATE_COLORS.get(host.state, ""))
            if host.phase:
                text.append(f"  {host.phase}", style="dim")
            if host.reason:
                text.append(f"  {host.reason}", style="#ff3f3f")
            elif host.message:
                text.append(f"  {host.message}", style="dim")
        text.append("   enter: detail  f: next failed", style="dim")
        self.query_one("#host-line", Static).update(text)

    @on(FleetGrid.HostSelected)
    def _host_selected(self, event: FleetGrid.HostSelected) -> None:
        deploy_id = self.feed.deploy_id if self.feed else ""
        self.app.push_screen(HostDetailScreen(event.host, self.hosts.get, self.phases, deploy_id))

    @on(HistoryTable.DeployChosen)
    def _deploy_chosen(self, event: HistoryTable.DeployChosen) -> None:
        self.app.push_screen(DeployDetailScreen(event.deploy_id))

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        targets: dict[str, type[Widget]] = {"queue": QueueTable, "fleet": FleetGrid, "history": HistoryTable}
        target = targets.get(pane or "")
        if target is not None:
            self.query_one(target).focus()
        if pane == "metrics":
            self.load_metrics()

    @on(Button.Pressed, "#deploy")
    def _deploy_pressed(self) -> None:
        self.action_deploy()

    @on(Button.Pressed, "#lock")
    def _lock_pressed(self) -> None:
        self.action_lock()

    @on(Button.Pressed, "#refresh")
    def _refresh_pressed(self) -> None:
        self.action_refresh()

    # -- actions ------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        # Drop the focus first: a focused widget left in the old pane would pull the tabs
        # back to its own pane (the metrics pane has nothing to take the focus).
        self.set_focus(None)
        self.query_one(TabbedContent).active = tab

    def action_refresh(self) -> None:
        self.refresh_all()

    def action_attach(self) -> None:
        self._find_running()

    @work(thread=True, exclusive=True, group="poll")
    def _find_running(self) -> None:
        try:
            running = self.service.running_deploy()
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
            return
        if running is None:
            self._ui(self.notify, "No deploy is running.")
        else:
            self._ui(self._attach_and_show, running)

    def _attach_and_show(self, deploy_id: str) -> None:
        self.attach(deploy_id)
        self.action_tab("fleet")

    def action_deploy(self) -> None:
        change = self.query_one(QueueTable).current
        if change is None:
            self.notify("Nothing to deploy: the queue is empty.", severity="warning")
            return
        if self.feed is not None and not self.feed.finished and not self.done_seen:
            self.notify(f"{self.feed.deploy_id} is still running.", severity="warning")
            return
        self._preview(change.sha)

    @work(thread=True, exclusive=True, group="deploy")
    def _preview(self, sha: str) -> None:
        try:
            preview = self.service.preview(sha)
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
            return
        self._ui(self.app.push_screen, ConfirmDeploy(preview), self._confirmed)

    def _confirmed(self, choice: DeployChoice | None) -> None:
        if choice is not None:
            self._start(choice)

    @work(thread=True, exclusive=True, group="deploy")
    def _start(self, choice: DeployChoice) -> None:
        try:
            deploy_id = self.service.start_deploy(choice.sha, choice.override)
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
            return
        self._ui(self.notify, f"{deploy_id} started: {short(choice.sha, '-')}")
        self._ui(self._attach_and_show, deploy_id)

    def action_lock(self) -> None:
        self._lock_dialog()

    @work(thread=True, exclusive=True, group="lock")
    def _lock_dialog(self) -> None:
        try:
            lock = self.service.lock_status()
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
            return
        self._ui(self.app.push_screen, LockScreen(lock), self._lock_chosen)

    def _lock_chosen(self, request: LockRequest | None) -> None:
        if request is not None:
            self._lock_change(request)

    @work(thread=True, exclusive=True, group="lock")
    def _lock_change(self, request: LockRequest) -> None:
        try:
            if request.action == "take":
                self.service.take_lock(request.reason)
                self._ui(self.notify, f"Lock taken: {request.reason}")
            else:
                self.service.release_lock()
                self._ui(self.notify, "Lock released.")
            lock = self.service.lock_status()
        except Exception as err:  # noqa: BLE001
            self._notify_error(err)
            return
        self._ui(self._show_lock, lock)

    def _show_lock(self, lock: Any) -> None:
        header = self.query_one(StatusHeader)
        header.lock_info, header.now = lock, self.now()
