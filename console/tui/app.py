"""The deploy console application.

`ConsoleApp(service=...)` takes any object that satisfies `console.tui.backend.ConsoleService`
(the engine's `console.service`, or the fake in the tests). `clock` is injectable so
snapshot tests render no wall-clock time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding

from console.tui.backend import ConsoleService
from console.tui.screens.console import ConsoleScreen


class ConsoleApp(App[None]):
    """Queue, deploy, fleet grid, key metrics and history for one environment."""

    TITLE = "deploy console"
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("ctrl+c", "quit", "Quit", show=False)]

    def __init__(
        self,
        service: ConsoleService,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.1,
        poll_interval: float = 5.0,
        metrics_interval: float = 5.0,
        metrics_window: float = 900.0,
    ) -> None:
        super().__init__()
        self.service = service
        self.clock = clock
        self.flush_interval = flush_interval
        self.poll_interval = poll_interval
        self.metrics_interval = metrics_interval
        self.metrics_window = metrics_window
        self.title = f"deploy console: {service.environment}"

    def get_default_screen(self) -> ConsoleScreen:
        return ConsoleScreen()

    @property
    def console_screen(self) -> ConsoleScreen:
        """The main screen (also while a dialog is open)."""
        return next(s for s in self.screen_stack if isinstance(s, ConsoleScreen))
