"""What the console screen's panes share: each is a tab, labelled and found by its id, with
the widget that takes the focus when it comes to the front."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import events, getters
from textual.widget import Widget
from textual.widgets import TabPane

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


class Pane(TabPane):
    """One tab of the console screen; `LABEL` is its tab's text, `PANE_ID` its id (the
    name `action_tab` switches to), `FOCUS` the selector of the widget that takes the focus."""

    LABEL: ClassVar[str]
    PANE_ID: ClassVar[str]
    FOCUS: ClassVar[str]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(self.LABEL, name=name, id=id or self.PANE_ID, classes=classes)

    @property
    def focus_target(self) -> Widget:
        """The widget that takes the focus when this pane comes to the front."""
        return self.query_one(self.FOCUS, Widget)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Only a widget that still has the focus brings its tab to the front.

        Textual's `TabPane` brings its tab to the front when a widget in it gets a Focus
        event. Focus events are handled later than the focus moves, so two tab switches in
        a row (`2` `4`) would each pull their tab back when the other's event arrived, and
        the two would chase each other for as long as the console ran (issue 13: tabs
        flipping on their own, a core busy, the footer rebuilt on every flip)."""
        if event.widget is not self.screen.focused:
            event.prevent_default()
