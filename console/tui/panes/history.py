"""History [4]: past deploys, newest first; enter opens one with its hosts."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult

from console.service import DeployRecord
from console.tui.panes.pane import Pane
from console.tui.screens.deploy_detail import DeployDetailScreen
from console.tui.widgets.history_table import HistoryTable
from console.tui.workers import service_worker

#: Deploys the tab lists.
SHOWN = 50


class HistoryPane(Pane):
    """Who deployed what, when, how long it took, the result and the verdict."""

    LABEL = "History [4]"
    PANE_ID = "history"
    FOCUS = "HistoryTable"

    def compose(self) -> ComposeResult:
        yield HistoryTable()

    @service_worker("history")
    def load(self) -> None:
        """Fetch the newest deploys from the service and show them."""
        records = self.app.service.history(SHOWN)
        self.app.call_from_thread(self._show, records)

    def _show(self, records: list[DeployRecord]) -> None:
        self.query_one(HistoryTable).show(records, self.app.clock())

    @on(HistoryTable.DeployChosen)
    def _deploy_chosen(self, event: HistoryTable.DeployChosen) -> None:
        self.app.push_screen(DeployDetailScreen(event.deploy_id))
