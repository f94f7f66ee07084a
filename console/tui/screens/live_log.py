"""The live log of a deploy, or of one host in it: every command, its output, each result.

As Shipit and Deployinator stream a deploy's output: the log follows the deploy's event log
from its start (a finished deploy is shown whole), one line per event, with the lines each
host's step printed (`HostOutput`, censored and bounded by the engine). It always ends in a
clear state (Deployinator #112): the deploy's result, or that its process died.

The follow worker formats lines off the UI thread and queues them; a 100 ms timer writes
what is queued in one go, so a busy deploy costs one repaint per tick, and the `RichLog`
keeps the newest `MAX_LINES`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from rich.text import Text
from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import RichLog, Static

from console.core.events import (
    DeployDone,
    DeployStarted,
    Event,
    HostDone,
    HostFailed,
    HostOutput,
    HostProgress,
    Notice,
    PhaseDone,
    PhaseStarted,
    WatchVerdict,
)
from console.core.text import printable, short
from console.tui.format import duration
from console.tui.theme import Palette, palette
from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.workers import service_worker

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp

#: Lines the log keeps (the newest).
MAX_LINES = 5000


class LogLines:
    """Formats a deploy's events as log lines (for all hosts, or one)."""

    def __init__(self, colors: Palette, host: str | None = None) -> None:
        self.colors = colors
        self.host = host
        self.t0: float | None = None
        self.done: DeployDone | None = None
        self.died = False

    def _stamp(self, ts: float) -> str:
        return f"+{duration(max(0.0, ts - (self.t0 or ts))):>7}"

    def _host_line(self, event: HostProgress | HostDone | HostFailed | HostOutput, body: Text) -> Text:
        line = Text(no_wrap=True)
        line.append(f"{self._stamp(event.ts)} ", style="dim")
        if self.host is None:
            line.append(f"{event.host:<12} ", style="bold")
        line.append(f"{event.phase:<11} ", style=self.colors.running)
        return line + body

    def lines(self, event: Event) -> list[Text]:
        """The lines `event` adds to the log (none for another host's events)."""
        c = self.colors
        host = getattr(event, "host", None)
        if self.host is not None and host is not None and host != self.host:
            return []
        if isinstance(event, HostOutput):
            out = []
            for raw in event.lines:
                style = f"bold {c.output}" if raw.startswith("$ ") else c.output
                out.append(self._host_line(event, Text(f"│ {printable(raw)}", style=style)))
            return out
        if isinstance(event, HostProgress):
            message = f": {printable(event.message)}" if event.message else ""
            return [self._host_line(event, Text(f"started{message}", style="dim"))]
        if isinstance(event, HostDone):
            message = f": {printable(event.message)}" if event.message else ""
            return [self._host_line(event, Text(f"done in {duration(event.seconds)}{message}", style=c.ok))]
        if isinstance(event, HostFailed):
            code = f" (exit {event.exit_code})" if event.exit_code is not None else ""
            body = Text(f"FAILED: {printable(event.reason)}{code}", style=f"bold {c.failed}")
            return [self._host_line(event, body)]
        if isinstance(event, DeployStarted):
            self.t0 = event.ts
            what = f"{event.action} {short(event.revision, '-')} by {printable(event.user)}"
            where = f"{len(event.hosts)} hosts in {len(event.chunks)} chunks" if self.host is None else self.host
            return [Text(f"══ {event.deploy_id}: {what}, {where}", style="bold")]
        if isinstance(event, PhaseStarted):
            if self.host is not None and self.host not in event.hosts:
                return []
            hosts = f" on {len(event.hosts)} hosts" if event.hosts and self.host is None else ""
            return [Text(f"{self._stamp(event.ts)} ── {event.phase}{hosts}", style=f"bold {c.running}")]
        if isinstance(event, PhaseDone):
            if self.host is not None:
                return []
            if event.skipped:
                return [Text(f"{self._stamp(event.ts)} ── {event.phase} skipped: {event.skipped}", style="dim")]
            failed = f", {event.failed} failed" if event.failed else ""
            style = c.caution if event.failed else c.ok
            text = f"{self._stamp(event.ts)} ── {event.phase} done: {event.ok} ok{failed} in {duration(event.seconds)}"
            return [Text(text, style=style)]
        if isinstance(event, Notice):
            style = {"error": f"bold {c.failed}", "warning": c.caution}.get(event.level, "")
            self.died = self.died or (event.level == "error" and "died without finishing" in event.message)
            return [Text(f"{self._stamp(event.ts)} !! {printable(event.message)}", style=style)]
        if isinstance(event, WatchVerdict):
            style = f"bold {c.failed}" if event.verdict == "degraded" else c.ok
            return [
                Text(f"{self._stamp(event.ts)} watch {event.metric}: {event.verdict}: {event.summary}", style=style)
            ]
        if isinstance(event, DeployDone):
            self.done = event
            style = {"ok": c.ok, "partial": c.caution}.get(event.result, c.failed)
            message = f": {printable(event.message)}" if event.message else ""
            return [Text(f"══ {event.result} in {duration(event.seconds)}{message}", style=f"bold {style}")]
        return []


class LiveLogScreen(ModalScreen[None]):
    """Follows one deploy's log (all hosts, or `host`) while it is open (escape closes)."""

    BINDINGS = [Binding("escape,q,l", "close", "Close")]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self, deploy_id: str, host: str | None = None) -> None:
        super().__init__()
        self.deploy_id = deploy_id
        self.host = host
        self.format: LogLines | None = None  # made on mount: it needs the theme's colours
        self._pending: list[Text] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.written = 0  # lines written so far (tests read it)
        self.finished = False  # the follow ended

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"live log: {self.deploy_id}" + (f", host {self.host}" if self.host else "")
            yield Static(Text("following…", style="italic"), id="log-state")
            yield RichLog(id="log", max_lines=MAX_LINES, markup=False, highlight=False, wrap=False)
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.format = LogLines(palette(self), self.host)
        self._timer = self.set_interval(0.1, self._flush)
        self._follow(self.format, self._stop)

    def on_unmount(self) -> None:
        self._stop.set()

    @service_worker("live-log")
    def _follow(self, lines: LogLines, stop: threading.Event) -> None:
        try:
            for event in self.app.service.follow(self.deploy_id, stop):
                new = lines.lines(event)
                if new:
                    with self._lock:
                        self._pending.extend(new)
                if stop.is_set():
                    break
        finally:
            self.finished = True

    def _flush(self) -> None:
        finished = self.finished  # read first: the worker queues its last lines before it sets it
        with self._lock:
            pending, self._pending = self._pending, []
        log = self.query_one("#log", RichLog)
        for line in pending[-MAX_LINES:]:
            log.write(line)
        self.written += len(pending)
        if pending or finished:
            self._show_state()
        if finished and not pending:
            self._timer.stop()  # nothing more will come

    def _show_state(self) -> None:
        lines = self.format
        assert lines is not None
        colors = palette(self)
        if lines.done is not None:
            d = lines.done
            style = {"ok": colors.ok, "partial": colors.caution}.get(d.result, colors.failed)
            state = Text(f"finished: {d.result} in {duration(d.seconds)}", style=f"bold {style}")
        elif lines.died:
            state = Text("ended without finishing: the deploy process died", style=f"bold {colors.failed}")
        elif self.finished:
            state = Text("stopped following", style="dim")
        else:
            state = Text(f"following… {self.written} lines", style="italic")
        self.query_one("#log-state", Static).update(state)

    def action_close(self) -> None:
        self.dismiss(None)
