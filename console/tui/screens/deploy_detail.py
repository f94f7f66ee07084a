"""A past (or running) deploy from the history: its summary and every host; from here, its
live log (l), a switch to its release (s), and an abort while it runs (x)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from console.core.events import PHASES
from console.core.progress import DeployView
from console.core.text import printable, short
from console.tui.format import duration, human_bytes, plain
from console.tui.screens.host_detail import HostDetailScreen
from console.tui.theme import palette
from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.widgets.fleet_grid import FleetGrid
from console.tui.widgets.fleet_legend import FleetLegend
from console.tui.widgets.phase_bars import PhaseBars
from console.tui.workers import service_worker

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


class DeployDetailScreen(ModalScreen[None]):
    """Loads a deploy's events in a worker and shows its hosts (escape closes)."""

    BINDINGS = [
        Binding("escape,q", "close", "Close"),
        Binding("l", "log", "Live log", tooltip="Every command and its output in this deploy"),
        Binding("s", "switch", "Switch to this release", tooltip="Switch every host to the release this deploy made"),
        Binding("x", "abort", "Abort", tooltip="Stop this deploy at its next safe point, if it still runs"),
    ]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self, deploy_id: str) -> None:
        super().__init__()
        self.deploy_id = deploy_id
        self.view = DeployView()

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = plain(f"deploy {self.deploy_id}", 80)
            yield Static(Text("loading…", style="dim"), id="summary")
            yield FleetGrid()
            yield FleetLegend()
            yield PhaseBars()
            yield DataTable(cursor_type="row", zebra_stripes=True)
        yield ConsoleFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("host", 18), ("state", 11), ("phase", 12), ("busy", 8), ("sent", 10), ("error", None)):
            table.add_column(label, key=label, width=width)
        self._load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Abort is offered (and in the footer) only while this deploy runs."""
        return self.view.running if action == "abort" else True

    @service_worker("deploy-detail")
    def _load(self) -> None:
        view = DeployView.of(self.app.service.events(self.deploy_id))
        self.app.call_from_thread(self._show, view)

    def _show(self, view: DeployView) -> None:
        colors = palette(self)
        self.view = view
        self.refresh_bindings()
        s, d = view.started, view.done
        text = Text()
        if s is not None:
            text.append(f"{s.action} of {short(s.revision, '-')} ", style="bold")
            text.append(
                f"(from {short(s.previous_revision, '-')}) by {printable(s.user, 64)}, {s.commits} commits, "
                f"{len(s.hosts)} hosts"
            )
            text.append(f", strategy {s.strategy}")
            if s.override:
                text.append(f"\noverride: {printable(s.override, 500)}", style=f"bold {colors.attention}")
        if d is not None:
            text.append(f"\nresult {d.result}", style="bold")
            text.append(f" in {duration(d.seconds)}")
            if d.message:
                text.append(f": {printable(d.message, 400)}")
        elif s is not None:
            text.append("\nstill running", style="italic")
        for verdict in view.verdicts.values():
            text.append(
                f"\n{verdict.metric}: {verdict.verdict} ({verdict.summary})",
                style=colors.failed if verdict.verdict == "degraded" else colors.ok,
            )
        self.query_one("#summary", Static).update(text)
        grid = self.query_one(FleetGrid)
        grid.set_hosts(view.hosts)
        grid.update_states({n: h.state for n, h in view.hosts.items()})
        self.query_one(FleetLegend).show(view.counts())
        self.query_one(PhaseBars).show(
            view.phases, {p: sum(1 for h in view.hosts.values() if p in h.seconds) for p in view.phases}
        )
        table = self.query_one(DataTable)
        table.clear()
        order = {"failed": 0}
        for host in sorted(view.hosts.values(), key=lambda h: (order.get(h.state, 1), h.name)):
            table.add_row(
                plain(host.name, 60),
                Text(host.state, style=colors.host(host.state)),
                plain(host.phase, 20),
                duration(sum(host.seconds.values())),
                human_bytes(host.bytes),
                plain(host.reason, style=colors.failed),
                key=host.name,
            )

    @on(FleetGrid.HostSelected)
    def _grid_host(self, event: FleetGrid.HostSelected) -> None:
        self._open(event.host)

    @on(DataTable.RowSelected)
    def _table_host(self, event: DataTable.RowSelected) -> None:
        self._open(str(event.row_key.value))

    def _open(self, host: str) -> None:
        phases = tuple(self.view.phases) or PHASES
        self.app.push_screen(HostDetailScreen(host, self.view.hosts.get, phases, self.deploy_id))

    def action_close(self) -> None:
        self.dismiss(None)

    def action_log(self) -> None:
        self.app.console_screen.open_log(self.deploy_id)

    def action_switch(self) -> None:
        s, d = self.view.started, self.view.done
        if s is None or d is None or d.result not in ("ok", "partial") or not d.hosts_ok:
            self.notify(f"{self.deploy_id} put no release on the hosts: nothing to switch to.", severity="warning")
            return
        self.dismiss(None)
        self.app.console_screen.switch_to(s.release)

    def action_abort(self) -> None:
        if not self.view.running:
            self.notify(f"{self.deploy_id} is not running: nothing to abort.", severity="warning")
            return
        self.app.console_screen.abort_deploy(self.deploy_id)
