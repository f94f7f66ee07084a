"""Fleet [2]: the deploy shown, live: every host's state, the phases, and what happened.

The screen follows the deploy and hands this pane one coalesced `FleetBatch` at a time
(`show`); the pane keeps UI-side copies of the hosts for the host line and the host detail,
and says where the deploy stands (`DeployStatus`: phase, chunk i of n, elapsed, time left
by this environment's past deploys), ticking every second (`tick`).
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import RichLog, Static

from console.core.events import LOCAL_PHASES, PHASES
from console.core.progress import HostView
from console.core.text import counted, printable, short
from console.tui.deploy_status import DeployStatus, Timing, current_chunk
from console.tui.feed import FleetBatch
from console.tui.format import plain
from console.tui.panes.pane import Pane
from console.tui.screens.host_detail import HostDetailScreen
from console.tui.theme import palette
from console.tui.widgets.fleet_grid import FleetGrid
from console.tui.widgets.fleet_legend import FleetLegend
from console.tui.widgets.phase_bars import PhaseBars

#: Failed hosts written to the activity log per deploy; the grid and `f` show every one.
LOGGED_FAILURES = 50


class FleetPane(Pane):
    """The fleet grid of the deploy shown, its legend, phase bars and activity log."""

    LABEL = "Fleet [2]"
    PANE_ID = "fleet"
    FOCUS = "FleetGrid"

    def __init__(
        self, hosts: Iterable[str] = (), *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.host_names = tuple(hosts)
        self.deploy_id = ""
        self.hosts: dict[str, HostView] = {}  # UI-side copies, for the host line and detail
        self.phases: tuple[str, ...] = PHASES
        self.timings: dict[str, Timing | None] = {}
        """How long this environment's deploys and switches take, per phase, by action (set
        when attaching): a switch's time left comes from past switches, not deploys."""
        self.status: DeployStatus | None = None
        """Where the deploy shown stands, as of its last batch."""
        self._failed_logged: set[str] = set()
        self._done_logged = ""  # the deploy whose end the activity log says

    def compose(self) -> ComposeResult:
        yield Static(Text("No deploy yet. Press d on the queue to deploy.", style="dim"), id="deploy-line")
        yield FleetGrid(self.host_names)
        yield Static("", id="host-line")
        yield FleetLegend(counts={"waiting": len(self.host_names)})
        yield PhaseBars()
        yield RichLog(id="activity", max_lines=500, markup=False, wrap=False)

    def attaching(self, deploy_id: str) -> None:
        """Forget the deploy shown; `deploy_id` is about to be followed."""
        self.deploy_id = deploy_id
        self.hosts = {}
        self.status = None
        self._failed_logged = set()
        self.query_one("#activity", RichLog).clear()
        self.query_one("#deploy-line", Static).update(Text(f"attaching to {deploy_id}…", style="italic"))

    def show(self, batch: FleetBatch, now: float) -> DeployStatus:
        """Repaint with what changed; returns where the deploy stands (the header says it too)."""
        colors = palette(self)
        grid = self.query_one(FleetGrid)
        if batch.reset and batch.started is not None:
            self.hosts = {}
            grid.set_hosts(batch.started.hosts)
            self.phases = tuple(batch.started.phases)
        self.hosts.update(batch.hosts)
        grid.update_states({n: h.state for n, h in batch.hosts.items()})
        self.query_one(FleetLegend).show(batch.counts)
        self.query_one(PhaseBars).show(batch.phases, batch.phase_done)
        log = self.query_one("#activity", RichLog)
        notice_styles = {"error": f"bold {colors.failed}", "warning": colors.caution}
        for notice in batch.notices[-20:]:
            log.write(plain(notice.message, 400, style=notice_styles.get(notice.level, "")))
        for name, host in batch.hosts.items():
            if host.state == "failed" and name not in self._failed_logged:
                self._failed_logged.add(name)
                if len(self._failed_logged) <= LOGGED_FAILURES:
                    log.write(plain(f"{name} failed in {host.phase}: {host.reason}", 400, style=colors.failed))
        self.status = self._status(batch)
        self.query_one("#deploy-line", Static).update(self._deploy_line(self.status, now))
        if batch.done is not None and self._done_logged != batch.deploy_id:
            self._done_logged = batch.deploy_id
            log.write(self._deploy_line(self.status, now))
        highlighted = grid.current_host
        if highlighted is not None and highlighted in batch.hosts:
            self._show_host_line(highlighted)
        return self.status

    def _status(self, batch: FleetBatch) -> DeployStatus:
        running = tuple(p.name for p in batch.phases.values() if p.state == "running")
        started = batch.started
        chunk = 0
        if started is not None and batch.done is None:
            fanout = [p for p in running if p not in LOCAL_PHASES]
            chunk = current_chunk(started.chunks, self.hosts, fanout[0]) if fanout else 0
        timing = self.timings.get(started.action) if started is not None else None
        left = timing.remaining(batch.phases, batch.phase_done) if timing else None
        return DeployStatus(batch.deploy_id, started, batch.done, running, chunk, left, timing, batch.last_ts)

    def tick(self, now: float) -> None:
        """Say again where the deploy stands while it runs: its time ticks (a finished one's
        line does not change, and an idle console repaints nothing)."""
        if self.status is not None and self.status.started is not None and self.status.done is None:
            self.query_one("#deploy-line", Static).update(self._deploy_line(self.status, now))

    def _deploy_line(self, status: DeployStatus, now: float) -> Text:
        colors = palette(self)
        s = status.started
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{status.deploy_id} ", style="bold")
        if s is not None:
            text.append(
                f"{s.action} {short(s.revision, '-')} by {printable(s.user, 64)}, {counted(s.commits, 'commit')} · "
            )
        text.append_text(status.text(now, colors))
        if s is not None and s.override:
            text.append(f"  override: {printable(s.override, 120)}", style=colors.attention)
        return text

    def _show_host_line(self, name: str) -> None:
        colors = palette(self)
        host = self.hosts.get(name)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{name} ", style="bold")
        if host is None:
            text.append("waiting", style=colors.host("waiting"))
        else:
            text.append(host.state, style=colors.host(host.state))
            if host.phase:
                text.append(f"  {host.phase}", style="dim")
            if host.reason:
                text.append(f"  {printable(host.reason)}", style=colors.failed)
            elif host.message:
                text.append(f"  {printable(host.message)}", style="dim")
        text.append("   enter: detail  f: next failed", style="dim")
        self.query_one("#host-line", Static).update(text)

    @on(FleetGrid.HostHighlighted)
    def _host_highlighted(self, event: FleetGrid.HostHighlighted) -> None:
        self._show_host_line(event.host)

    @on(FleetGrid.HostSelected)
    def _host_selected(self, event: FleetGrid.HostSelected) -> None:
        self.app.push_screen(HostDetailScreen(event.host, self.hosts.get, self.phases, self.deploy_id))
