"""A host's detail in the deploy shown: phases, timings, bytes, output, the error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen

from console.core.events import PHASES
from console.core.progress import HostView
from console.tui.format import plain
from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.widgets.host_card import HostCard

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


class HostDetailScreen(ModalScreen[None]):
    """Follows one host while it is open (escape closes)."""

    BINDINGS = [
        Binding("escape,enter,q", "close", "Close"),
        Binding("l", "log", "Host's live log", tooltip="Every command this host ran in the deploy, and its output"),
    ]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(
        self,
        host: str,
        lookup: Callable[[str], HostView | None],
        phases: Sequence[str] = PHASES,
        deploy_id: str = "",
    ) -> None:
        super().__init__()
        self.host = host
        self.lookup = lookup
        self.phases = tuple(phases)
        self.deploy_id = deploy_id
        self._shown: object = None

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = plain(f"host {self.host}", 80)
            yield HostCard()
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self._render_host()
        self.set_interval(0.25, self._render_host)

    def _render_host(self) -> None:
        view = self.lookup(self.host)
        if view is not None and view == self._shown:
            return
        self._shown = view
        self.query_one(HostCard).show(view, self.phases, self.deploy_id)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_log(self) -> None:
        if not self.deploy_id:
            self.notify("No deploy shown: this host has no log yet.", severity="warning")
            return
        self.app.console_screen.open_log(self.deploy_id, self.host)
