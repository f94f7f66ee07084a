"""Take or release the deploy lock, with a reason."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from console.service import LockInfo
from console.tui.theme import palette


@dataclass(frozen=True)
class LockRequest:
    """`take` with a reason, or `release`."""

    action: str
    reason: str = ""


class LockScreen(ModalScreen[LockRequest | None]):
    """Shows who holds the lock; takes it with a reason or releases it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, lock: LockInfo | None) -> None:
        super().__init__()
        self.holder = lock

    def compose(self) -> ComposeResult:
        colors = palette(self)
        with Vertical():
            text = Text()
            if self.holder is None:
                text.append("The lock is free. ", style=f"bold {colors.ok}")
                text.append("Taking it stops every deploy, by people and automation, until released.")
            else:
                text.append(f"Held by {self.holder.who}", style=f"bold {colors.attention}")
                text.append(f": {self.holder.reason}" if self.holder.reason else "")
                if self.holder.stale:
                    text.append("  (stale: its process is gone)", style="dim")
            yield Static(text)
            yield Input(placeholder="reason (why deploys must wait)", id="reason")
            with Horizontal(id="buttons"):
                yield Button("Take lock", id="take", variant="warning")
                yield Button("Release lock", id="release", disabled=self.holder is None)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        reason = self.query_one("#reason", Input)
        reason.cursor_blink = not self.app.is_headless  # steady screenshots
        reason.focus()

    @on(Input.Submitted, "#reason")
    @on(Button.Pressed, "#take")
    def _take(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.notify("Say why you take the lock.", severity="warning")
            return
        self.dismiss(LockRequest("take", reason))

    @on(Button.Pressed, "#release")
    def _release(self) -> None:
        self.dismiss(LockRequest("release"))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
