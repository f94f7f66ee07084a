"""The deploy console application.

`ConsoleApp(service=...)` takes any object that satisfies `console.tui.backend.ConsoleService`
(the engine's `console.service`, the fake in the tests, the bench's synthetic service).
`clock` is injectable so snapshot tests render no wall-clock time.

The app holds what every screen shares: the service, the clock and the intervals, the
styles (`console.tcss`) and the theme (`console.tui.theme`), the one place a failed
worker is shown to the person (`on_worker_state_changed`), the console's own commands in
the command palette (the main screen's bindings, by name), when garbage is collected
(`console.tui.collector`), and where a screenshot goes. Screens and widgets that need
these declare `app = getters.app(ConsoleApp)` for the type checker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.tui import textual_fixes
from console.tui.backend import ConsoleService
from console.tui.collector import Collector
from console.tui.screens.console import ConsoleScreen
from console.tui.theme import DEFAULT_PALETTE, THEME
from console.tui.workers import failure_line

textual_fixes.patch()


class ConsoleApp(App[None]):
    """Queue, deploy, fleet grid, key metrics and history for one environment."""

    CSS_PATH = "console.tcss"
    TITLE = "deploy console"
    BINDINGS = [
        Binding(
            "q", "quit", "Quit", tooltip="Close the console; a running deploy goes on (a reopened console attaches)"
        ),
        Binding("ctrl+c", "quit", "Quit", show=False),
    ]

    def __init__(
        self,
        service: ConsoleService,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.1,
        poll_interval: float = 5.0,
        metrics_interval: float = 1.0,  # how often to look whether a step of the graphs is over
        metrics_window: float = 900.0,
    ) -> None:
        super().__init__()
        self.register_theme(THEME)
        self.theme = THEME.name
        self.service = service
        self.clock = clock
        self.flush_interval = flush_interval
        self.poll_interval = poll_interval
        self.metrics_interval = metrics_interval
        self.metrics_window = metrics_window
        self.title = f"deploy console: {service.environment}"
        self.collector = Collector()
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            # No animations unless asked for: the tabs' sliding underline alone made every tab
            # switch 20 frames of repaint (a third of its cost), and over SSH each frame is sent.
            self.animation_level = "none"

    def on_mount(self) -> None:
        """Garbage is collected while the person pauses (console/tui/collector.py)."""
        self.call_after_refresh(self.collector.start)
        self.set_interval(0.25, self.collector.tick)

    def on_unmount(self) -> None:
        self.collector.stop()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self.collector.input()
        await super().on_event(event)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """The console's colours, for a theme that does not set them."""
        return DEFAULT_PALETTE.variables()

    def get_default_screen(self) -> ConsoleScreen:
        return ConsoleScreen()

    @property
    def console_screen(self) -> ConsoleScreen:
        """The main screen (also while a dialog is open)."""
        return next(s for s in self.screen_stack if isinstance(s, ConsoleScreen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, then (on the main screen) every console action by its name."""
        yield from super().get_system_commands(screen)
        if not isinstance(screen, ConsoleScreen):
            return
        actions: set[str] = set()
        for active in screen.active_bindings.values():
            b = active.binding
            if active.node is screen and b.description and b.action not in actions:
                actions.add(b.action)
                yield SystemCommand(
                    f"{b.description} ({self.get_key_display(b)})",
                    b.tooltip or b.description,
                    lambda action=b.action: self.call_later(screen.run_action, action),
                )

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """Textual saves to the Downloads directory, which a server often lacks (then it said
        "Failed to save screenshot"): use it if it exists, else the current directory."""
        if path is None:
            downloads = Path(os.environ.get("XDG_DOWNLOAD_DIR") or Path.home() / "Downloads")
            path = str(downloads if downloads.is_dir() else Path.cwd())
        return super().deliver_screenshot(filename, path, time_format)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every failed call to the service, from any screen, as one notification line."""
        error = event.worker.error
        if event.state is WorkerState.ERROR and error is not None:
            self.notify(failure_line(error), severity="error", timeout=8, markup=False)
