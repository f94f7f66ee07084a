"""The header: the environment, the lock, what is live (commit, subject, author, who deployed
it and when), the fleet, and where the deploy shown stands.

Two lines that never wrap: each is cut with an ellipsis at the width it has, so what
matters most comes first (the lock before the live commit's subject, the deploy's state
before the host counts).
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from console.core.progress import HOST_STATES
from console.core.text import printable, short
from console.service import LockInfo, Serving
from console.tui.deploy_status import DeployStatus
from console.tui.format import ago, short_shas
from console.tui.theme import palette
from console.tui.widgets.fleet_grid import GLYPHS


class StatusHeader(Widget):
    """Two lines at the top of the console that say where things stand."""

    environment: reactive[str] = reactive("")
    """The environment this console deploys to."""

    live: reactive[Serving | None] = reactive(None)
    """What the fleet serves now, and who put it there when."""

    lock_info: reactive[LockInfo | None] = reactive(None, always_update=True)
    """The lock holder (who, reason, since, stale) or None."""

    hosts: reactive[int] = reactive(0)
    """Fleet size."""

    counts: reactive[dict[str, int]] = reactive(dict, always_update=True)
    """Hosts per state in the deploy shown (empty when none)."""

    status: reactive[DeployStatus | None] = reactive(None, always_update=True)
    """Where the deploy shown stands (None: no deploy shown)."""

    now: reactive[float] = reactive(0.0)
    """The console's clock, for "since" texts and the deploy's time."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)

    def render(self) -> Text:
        text = self._where()
        text.append("\n")
        text.append_text(self._deploy())
        return text

    def _where(self) -> Text:
        colors = palette(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" deploy console ", style="bold reverse")
        text.append(" ")
        text.append(self.environment or "?", style="bold")
        text.append("  lock ")
        lock = self.lock_info
        if lock is None:
            text.append("free", style=colors.ok)
        else:
            held = f" for {ago(self.now - lock.since)}" if lock.since and self.now else ""
            stale = " (stale)" if lock.stale else ""
            text.append(f"held by {printable(lock.who, 64)}{held}{stale}", style=f"bold {colors.attention}")
            if lock.reason:
                text.append(f": {short_shas(printable(lock.reason, 120))}", style=colors.attention)
        text.append("  live ")
        live = self.live
        if live is None:
            text.append("nothing yet", style="dim")
            return text
        text.append(short(live.revision), style=f"bold {colors.commit}")
        how = "switched back" if live.action == "switch" else "deployed"
        when = f" {ago(self.now - live.since)} ago" if self.now and live.since else ""
        text.append(f" {how} by {printable(live.deployed_by, 40)}{when}")
        if live.subject:
            text.append(": ")
            text.append(printable(live.subject, 120), style="bold")
            if live.author:
                text.append(f" ({printable(live.author, 40)})", style="dim")
        return text

    def _deploy(self) -> Text:
        colors = palette(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {self.hosts} hosts", style="bold")
        status = self.status
        if status is None:
            text.append("  no deploy shown", style="dim")
            return text
        text.append(f"  {status.deploy_id} ", style="bold")
        text.append_text(status.text(self.now, colors))
        text.append(" ")
        for state in HOST_STATES:
            count = self.counts.get(state, 0)
            if count:
                text.append(f"  {GLYPHS[state]} {count} {state}", style=colors.host(state))
        return text
