"""Queue [1]: the undeployed commits, the highlighted one's detail, and the deploy button."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button

from console.service import Change
from console.tui.panes.pane import Pane
from console.tui.screens.commit import CommitScreen
from console.tui.widgets.commit_detail import CommitDetail
from console.tui.widgets.queue_table import QueueTable
from console.tui.workers import service_worker


class QueuePane(Pane):
    """The queue of reviewed changes on trunk; `d` deploys the highlighted one."""

    LABEL = "Queue [1]"
    PANE_ID = "queue"
    FOCUS = "QueueTable"

    def compose(self) -> ComposeResult:
        with Horizontal(id="queue-bar"):
            yield Button("Deploy (d)", id="deploy", variant="success", action="screen.deploy")
            yield Button("Lock (k)", id="lock", variant="warning", action="screen.lock")
            yield Button("Refresh (r)", id="refresh", action="screen.refresh")
        yield QueueTable()
        yield CommitDetail()

    @property
    def current(self) -> Change | None:
        """The highlighted commit: what a deploy would ship up to."""
        return self.query_one(QueueTable).current

    @service_worker("queue")
    def load(self) -> None:
        """Fetch the queue from the service and show it."""
        changes = self.app.service.queue()
        self.app.call_from_thread(self._show, changes)

    def _show(self, changes: list[Change]) -> None:
        self.query_one(QueueTable).show(changes, self.app.clock())
        if not changes:
            self.query_one(CommitDetail).show(None)

    @on(QueueTable.ChangeHighlighted)
    def _change_highlighted(self, event: QueueTable.ChangeHighlighted) -> None:
        self.query_one(CommitDetail).show(event.change, event.included)

    @on(QueueTable.ChangeChosen)
    def _change_chosen(self, event: QueueTable.ChangeChosen) -> None:
        self.app.push_screen(CommitScreen(event.change, event.included))
