"""What the console screen's panes share: each is a tab, labelled and found by its id."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import getters
from textual.widgets import TabPane

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


class Pane(TabPane):
    """One tab of the console screen; `LABEL` is its tab's text, `PANE_ID` its id (the
    name `action_tab` switches to)."""

    LABEL: ClassVar[str]
    PANE_ID: ClassVar[str]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(self.LABEL, name=name, id=id or self.PANE_ID, classes=classes)
