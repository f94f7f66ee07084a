"""The main screen: the header, then a tab per pane (queue, fleet, metrics, history), and
the footer with every binding.

The panes load and render their own data; this screen holds what they share: the deploy
shown, attaching to one, and refresh. The actions that change something or open a dialog
(deploy, switch, retry, abort, live log, lock, help) are its base, `OperatorActions`
(screens/operator.py). A deploy being followed is folded into a `DeployFeed` on its worker
thread; a 100 ms timer takes one coalesced batch from it and repaints the fleet pane and
the header once. Every call to the
service runs in a `service_worker`, whose failure the app shows (see `console.tui.workers`).
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from textual import events, getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import TabbedContent

from console.service import LockInfo, Serving
from console.tui.deploy_status import TIMING_DEPLOYS, Timing
from console.tui.feed import DeployFeed, FleetBatch
from console.tui.format import duration
from console.tui.panes.fleet import FleetPane
from console.tui.panes.history import HistoryPane
from console.tui.panes.metrics import MetricsPane
from console.tui.panes.pane import Pane
from console.tui.panes.queue import QueuePane
from console.tui.screens.operator import OperatorActions
from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.widgets.history_table import HistoryTable
from console.tui.widgets.queue_table import QueueTable
from console.tui.widgets.status_header import StatusHeader
from console.tui.workers import service_worker

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


class ConsoleScreen(OperatorActions):
    """Queue, fleet, metrics and history of one environment."""

    AUTO_FOCUS = "QueueTable"

    BINDINGS = [
        Binding(
            "a",
            "attach",
            "Attach",
            tooltip="Show the deploy running now, wherever it was started (another console, invoke deploy)",
        ),
        Binding("r", "refresh", "Refresh", tooltip="Ask the engine again: queue, history, lock, metrics"),
        Binding("1", "tab('queue')", "Queue"),
        Binding("2", "tab('fleet')", "Fleet"),
        Binding("3", "tab('metrics')", "Metrics"),
        Binding("4", "tab('history')", "History"),
    ]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self) -> None:
        super().__init__()
        self.feed: DeployFeed | None = None
        self._stop = threading.Event()
        self.batches = 0  # batches applied (tests and the bench read it)
        self.events = 0  # events folded into the view shown
        self.done_seen = False
        self._end_known = False  # the deploy shown had ended before it was shown (no notice of its end)
        self._flush_timer: Timer | None = None
        self._switch_offered: set[str] = set()  # deploys whose DEGRADED verdict offered a switch back

    # -- layout -------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusHeader()
        with TabbedContent(initial="queue"):
            yield QueuePane()
            yield FleetPane(self.app.service.host_names)
            yield MetricsPane()
            yield HistoryPane()
        yield ConsoleFooter()

    def on_mount(self) -> None:
        app = self.app
        header = self.query_one(StatusHeader)
        header.environment = app.service.environment
        header.hosts = len(app.service.host_names)
        header.now = app.clock()
        self._flush_timer = self.set_interval(app.flush_interval, self.flush, pause=True)
        self.set_interval(1.0, self.tick)
        self.refresh_all()
        self.set_interval(app.poll_interval, self.poll)
        self.set_interval(app.metrics_interval, functools.partial(self.load_metrics, new_step=True))

    def on_resize(self, event: events.Resize) -> None:
        """Lay out for the terminal there is: below 32 rows the queue's buttons go (the footer
        has their keys) and the detail panes shrink, so the lists keep their rows."""
        self.set_class(event.size.height < 32, "-short")

    def on_unmount(self) -> None:
        self._stop.set()

    # -- background calls ---------------------------------------------------------
    def refresh_all(self) -> None:
        """Everything from the service again: the header, every pane."""
        self.poll()
        self.query_one(QueuePane).load()
        self.query_one(HistoryPane).load()
        self.load_metrics()

    def load_metrics(self, new_step: bool = False) -> None:
        """The metrics pane, with the verdicts of the deploy shown (or else the newest);
        `new_step`: only if another step of the graphs is over (the timer)."""
        self.query_one(MetricsPane).load(self.feed.deploy_id if self.feed else None, new_step=new_step)

    @service_worker("poll")
    def poll(self) -> None:
        """What is live, the lock, and a deploy running elsewhere to attach to (or, in a
        console that shows none yet, the last deploy: a reopened console shows its grid)."""
        service = self.app.service
        live = service.serving()
        lock = service.lock_status()
        show, ended = service.running_deploy(), False
        if show is None and self.feed is None:
            last = service.history(1)
            show, ended = (last[0].id, True) if last else (None, False)
        self.app.call_from_thread(self._polled, live, lock, show, ended)

    def _polled(self, live: Serving | None, lock: LockInfo | None, show: str | None, ended: bool) -> None:
        header = self.query_one(StatusHeader)
        header.live, header.lock_info, header.now = live, lock, self.app.clock()
        if show and (self.feed is None or self.feed.deploy_id != show):
            self.attach(show, ended=ended)

    def tick(self) -> None:
        """Every second: the deploy's time, "since" and "ago" texts, the ages in the table in
        front."""
        now = self.app.clock()
        self.query_one(StatusHeader).now = now
        self.query_one(FleetPane).tick(now)
        self._show_ages()

    def _show_ages(self) -> None:
        """The ages of the table in front, as of now. A hidden table's ages wait until it is
        painted again: rewritten while hidden, they made its first frame render every cell."""
        active = self.query_one(TabbedContent).active
        if active in ("queue", "history"):
            table = self.query_one(QueueTable) if active == "queue" else self.query_one(HistoryTable)
            table.show_ages(self.app.clock())

    @service_worker("timing")
    def _load_timing(self) -> None:
        records = self.app.service.history(3 * TIMING_DEPLOYS)
        timings = {action: Timing.of(records, action) for action in ("deploy", "switch")}
        self.app.call_from_thread(setattr, self.query_one(FleetPane), "timings", timings)

    # -- following a deploy -------------------------------------------------------
    def attach(self, deploy_id: str, *, ended: bool = False) -> None:
        """Show `deploy_id` live: fold its events from the start, then follow. `ended`: a
        deploy of the history, shown as it ended (no notice says it just finished)."""
        if self.feed is not None and self.feed.deploy_id == deploy_id and not self.feed.finished:
            return
        self._stop.set()
        self._stop = threading.Event()
        self.feed = DeployFeed(deploy_id)
        self.done_seen = False
        self._end_known = ended
        self.query_one(MetricsPane).live_verdicts = {}
        self.query_one(FleetPane).attaching(deploy_id)
        self._load_timing()
        self._follow(self.feed, self._stop)
        if self._flush_timer is not None:
            self._flush_timer.resume()
        self.refresh_bindings()  # abort (x) is offered while it runs

    @service_worker("follow")
    def _follow(self, feed: DeployFeed, stop: threading.Event) -> None:
        try:
            for event in self.app.service.follow(feed.deploy_id, stop):
                feed.fold(event)
                if stop.is_set():
                    break
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
                self.refresh_bindings()
            return
        self.apply_batch(batch)

    def apply_batch(self, batch: FleetBatch) -> None:
        self.batches += 1
        self.events = batch.events
        status = self.query_one(FleetPane).show(batch, self.app.clock())
        header = self.query_one(StatusHeader)
        header.counts = dict(batch.counts)
        header.status = status
        self.query_one(MetricsPane).live_verdicts = batch.verdicts
        self.offer_switch_back(batch.deploy_id, batch.verdicts, self._switch_offered)
        if batch.done is not None and not self.done_seen:
            self.done_seen = True
            self.refresh_bindings()
            self._deploy_finished(batch)

    def _deploy_finished(self, batch: FleetBatch) -> None:
        d = batch.done
        assert d is not None
        if not self._end_known:
            message = f"{batch.deploy_id} {d.result} in {duration(d.seconds)}"
            if d.hosts_failed:
                message += f"; {len(d.hosts_failed)} failed"
            self.notify(message, severity="information" if d.result == "ok" else "warning", timeout=8, markup=False)
        self.refresh_all()

    # -- events from widgets ------------------------------------------------------
    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A tab came to the front (a number key, a click on the tab): its pane takes the focus.

        A message about a tab that is no longer in front (the person switched again
        meanwhile) changes nothing. The metrics are fetched and drawn again, and a table's
        ages brought up to date, once the tab is painted as it was: the metrics' worker
        would hold the interpreter while the key's frame is drawn, and a table whose cells
        change renders every one of them again."""
        tabs = self.query_one(TabbedContent)
        if event.pane.id != tabs.active or not isinstance(event.pane, Pane):
            return
        self._focus_pane(event.pane)
        if event.pane.id == "metrics":
            self.call_after_refresh(self.load_metrics)
        self.call_after_refresh(self._show_ages)

    def _focus_pane(self, pane: Pane) -> None:
        focused = self.focused
        if focused is None or pane not in focused.ancestors:
            self.set_focus(pane.focus_target)

    # -- actions ------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        """Bring pane `tab` to the front with the focus in it (also when it is in front already)."""
        pane = self.query_one(f"#{tab}", Pane)
        self.query_one(TabbedContent).active = tab
        self._focus_pane(pane)

    def action_refresh(self) -> None:
        self.refresh_all()

    def action_attach(self) -> None:
        self._find_running()

    @service_worker("attach")  # not "poll": a poll started meanwhile (a deploy's end) cancelled the answer
    def _find_running(self) -> None:
        running = self.app.service.running_deploy()
        if running is None:
            self.app.call_from_thread(
                self.notify,
                "No deploy is running now. a attaches to one started anywhere: another console, invoke deploy.",
            )
        else:
            self.app.call_from_thread(self._attach_and_show, running)

    def _attach_and_show(self, deploy_id: str) -> None:
        self.attach(deploy_id)
        self.action_tab("fleet")

    def on_operator_actions_started(self, message: OperatorActions.Started) -> None:
        self._attach_and_show(message.deploy_id)
