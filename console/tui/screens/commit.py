"""One commit of the queue, whole (enter on a queue row): every file, the review, the DDL
hits, and what a deploy of it ships; `d` deploys it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen

from console.service import Change
from console.tui.widgets.commit_detail import CommitDetail
from console.tui.widgets.console_footer import ConsoleFooter

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


class CommitScreen(ModalScreen[None]):
    """Shows `change` and the commits a deploy of it includes (escape closes)."""

    BINDINGS = [
        Binding("escape,q,enter", "close", "Close"),
        Binding("d", "deploy", "Deploy", tooltip="Deploy this commit (and every older one): shows the plan"),
    ]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self, change: Change, included: Sequence[Change]) -> None:
        super().__init__()
        self.change = change
        self.included = list(included)

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = f"commit {self.change.short}"
            yield CommitDetail()
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(CommitDetail).show(self.change, self.included, files_shown=1000)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_deploy(self) -> None:
        self.dismiss(None)
        self.app.console_screen.action_deploy()
