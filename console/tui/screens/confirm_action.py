"""Confirm one operator action (switch, retry the failed hosts, abort): what it will do, then yes or no.

The dialog opens at once, before the service has said what the action would do, and asks
the service in a worker of its own (`load`): so keys typed meanwhile reach the dialog, never
the screen below, and a second press of the same key cannot stack a second dialog. Until
the proposal is shown, the confirm button is disabled; if `load` fails, the app shows the
one-line error and the dialog closes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from rich.text import Text
from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static
from textual.widgets.button import ButtonVariant

from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.workers import service_worker

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp

T = TypeVar("T")


@dataclass(frozen=True)
class Proposal(Generic[T]):
    """What confirming will do (`body`), to what (`value`, the dialog's result)."""

    body: Text
    value: T
    confirm: str = "Confirm"


class ConfirmAction(ModalScreen[T | None], Generic[T]):
    """`title`, then the proposal `load` returns (called in a thread); enter on the
    confirm button returns its value, escape returns None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("tab", "app.focus_next", "Next button")]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self, title: str, load: Callable[[], Proposal[T]], *, variant: ButtonVariant = "warning") -> None:
        super().__init__()
        self.title_text = title
        self.load = load
        self.variant = variant
        self.proposal: Proposal[T] | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(Text("asking the engine…", style="dim italic"), id="proposal")
            with Horizontal(id="buttons"):
                yield Button("Confirm", id="confirm", variant=self.variant, disabled=True)
                yield Button("Cancel", id="cancel")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        self._load()

    @service_worker("confirm-action")
    def _load(self) -> None:
        proposal: Proposal[T] | None = None
        try:
            proposal = self.load()
        finally:  # a failure is shown by the app; the dialog then closes
            self.app.call_from_thread(self._loaded, proposal)

    def _loaded(self, proposal: Proposal[T] | None) -> None:
        if proposal is None:
            self.dismiss(None)
            return
        self.proposal = proposal
        self.query_one("#proposal", Static).update(proposal.body)
        confirm = self.query_one("#confirm", Button)
        confirm.label = proposal.confirm
        confirm.disabled = False
        confirm.focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self.proposal is not None:
            self.dismiss(self.proposal.value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
