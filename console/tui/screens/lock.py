"""Take or release the deploy lock, with a reason; who holds it, since when, where and why.

The dialog opens at once and reads the lock in a worker of its own, so a reason typed
while it loads goes into the reason box, never to the screen below. While the lock is
held, "Take lock" is disabled: the holder, since when, and on which host and process are
shown instead. An empty reason keeps the dialog open with an inline error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from console.core.text import local_time, printable
from console.service import LockInfo
from console.tui.format import ago
from console.tui.theme import palette
from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.workers import service_worker

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


@dataclass(frozen=True)
class LockRequest:
    """`take` with a reason, or `release`."""

    action: str
    reason: str = ""


def holder_text(lock: LockInfo, now: float) -> Text:
    """Who holds the lock, since when (and for how long), on which host and process, why."""
    text = Text()
    text.append(f"Held by {printable(lock.who)}", style="bold")
    text.append(f" since {local_time(lock.since)} ({ago(now - lock.since)} ago)")
    if lock.pid is not None:
        where = f" on {printable(lock.hostname)}" if lock.hostname else ""
        text.append(f"\nprocess {lock.pid}{where}")
        if lock.deploy_id:
            text.append(f", deploy {printable(lock.deploy_id)}")
        if lock.stale:
            text.append("  (stale: its process is gone; invoke unlock --force takes it over)", style="dim")
    else:
        text.append("\nheld on purpose (no deploy process): it stops every deploy until released")
    if lock.reason:
        text.append(f"\nreason: {printable(lock.reason)}")
    return text


class LockScreen(ModalScreen[LockRequest | None]):
    """Shows who holds the lock; takes it with a reason or releases it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("tab", "app.focus_next", "Next field")]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self) -> None:
        super().__init__()
        self.holder: LockInfo | None = None
        self.loaded = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text("reading the lock…", style="dim italic"), id="holder")
            yield Input(placeholder="reason (why deploys must wait)", id="reason")
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Take lock", id="take", variant="warning", disabled=True)
                yield Button("Release lock", id="release", disabled=True)
                yield Button("Cancel", id="cancel")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        reason = self.query_one("#reason", Input)
        reason.cursor_blink = not self.app.is_headless  # steady screenshots
        reason.focus()
        self._load()

    @service_worker("lock")
    def _load(self) -> None:
        lock = self.app.service.lock_status()
        self.app.call_from_thread(self._loaded, lock)

    def _loaded(self, lock: LockInfo | None) -> None:
        colors = palette(self)
        self.holder, self.loaded = lock, True
        if lock is None:
            text = Text()
            text.append("The lock is free. ", style=f"bold {colors.ok}")
            text.append("Taking it stops every deploy, by people and automation, until released.")
        else:
            text = holder_text(lock, self.app.clock())
            text.stylize(colors.attention, 0, len(f"Held by {printable(lock.who)}"))
        self.query_one("#holder", Static).update(text)
        self.query_one("#take", Button).disabled = lock is not None
        self.query_one("#release", Button).disabled = lock is None
        reason = self.query_one("#reason", Input)
        reason.disabled = lock is not None
        if lock is not None:
            self.query_one("#release", Button).focus()

    def _say(self, error: str) -> None:
        self.query_one("#error", Static).update(Text(error, style=f"bold {palette(self).failed}"))
        self.set_class(bool(error), "-error")

    @on(Input.Changed, "#reason")
    def _reason_changed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self._say("")

    @on(Input.Submitted, "#reason")
    @on(Button.Pressed, "#take")
    def _take(self) -> None:
        if not self.loaded or self.holder is not None:
            return
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self._say("Say why you take the lock: everyone who wants to deploy sees it.")
            return
        self.dismiss(LockRequest("take", reason))

    @on(Button.Pressed, "#release")
    def _release(self) -> None:
        self.dismiss(LockRequest("release"))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
