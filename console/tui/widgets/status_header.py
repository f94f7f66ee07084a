"""The header: environment, live revision, lock, fleet size and health, the current deploy."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from console.core.text import printable, short
from console.service import LockInfo
from console.tui.format import ago
from console.tui.theme import palette


class StatusHeader(Widget):
    """Two lines at the top of the console that say where things stand."""

    environment: reactive[str] = reactive("")
    """The environment this console deploys to."""

    revision: reactive[str | None] = reactive(None)
    """The commit the fleet serves now."""

    lock_info: reactive[LockInfo | None] = reactive(None, always_update=True)
    """The lock holder (who, reason, since, stale) or None."""

    hosts: reactive[int] = reactive(0)
    """Fleet size."""

    counts: reactive[dict[str, int]] = reactive(dict, always_update=True)
    """Hosts per state in the deploy shown (empty when none)."""

    deploy: reactive[str] = reactive("")
    """A line about the deploy shown, e.g. `d-0004 running, 1m 02s`."""

    now: reactive[float] = reactive(0.0)
    """The console's clock, for "since" texts."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)

    def render(self) -> Text:
        colors = palette(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" deploy console ", style="bold reverse")
        text.append("  ")
        text.append(self.environment or "?", style="bold")
        text.append("  live ")
        text.append(short(self.revision) if self.revision else "none yet", style=f"bold {colors.commit}")
        text.append("  lock ")
        lock = self.lock_info
        if lock is None:
            text.append("free", style=colors.ok)
        else:
            held = f" for {ago(self.now - lock.since)}" if lock.since and self.now else ""
            stale = " (stale)" if lock.stale else ""
            text.append(f"held by {printable(lock.who, 64)}{held}{stale}", style=f"bold {colors.attention}")
            if lock.reason:
                text.append(f": {printable(lock.reason)}", style=colors.attention)
        text.append("\n")
        text.append(f"{self.hosts} hosts", style="bold")
        counts = self.counts
        if counts:
            for state in ("verified", "failed", "waiting"):
                if counts.get(state):
                    text.append(f"  {state} {counts[state]}", style=colors.host(state))
            busy = sum(v for k, v in counts.items() if k not in ("verified", "failed", "waiting"))
            if busy:
                text.append(f"  in progress {busy}", style=colors.host("assets"))
        text.append("   ")
        if self.deploy:
            text.append(self.deploy, style="italic")
        else:
            text.append("no deploy running", style="dim")
        return text
