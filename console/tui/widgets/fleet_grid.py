"""The fleet grid: every host one character cell, its state's glyph in its state's colour.

500 hosts fit in five rows of a 120-column terminal. The grid is a single widget that
renders run-length `Strip`s, not one widget per host, so a repaint costs a few segments
per row however many hosts changed. A fleet small enough for its names to fit in a third
of the height it is given gets a cell per host with its name (`■ web007`), so 20 hosts
on a wide terminal read as a table, not as one short row of dots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from console.tui.theme import Palette, palette

#: Host state -> the character of its cell: each state is told apart without colour too.
GLYPHS = {
    "waiting": "·",
    "assets": "a",
    "staged": "s",
    "switching": "»",
    "restarting": "r",
    "verified": "■",
    "unchanged": "○",
    "failed": "✗",
}


class FleetGrid(Widget, can_focus=True):
    """Every host of the fleet as one cell (`GLYPHS`); cursor keys move, enter opens."""

    BINDINGS = [
        Binding("left", "move(-1)", "Prev host", show=False),
        Binding("right", "move(1)", "Next host", show=False),
        Binding("up", "move_row(-1)", "Up", show=False),
        Binding("down", "move_row(1)", "Down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("f", "next_failed", "Next failed"),
        Binding("enter", "select", "Host detail"),
    ]

    cursor: reactive[int] = reactive(0, layout=False)
    """Index of the highlighted host."""

    @dataclass
    class HostHighlighted(Message):
        """The cursor moved to a host."""

        grid: FleetGrid
        host: str
        state: str

        @property
        def control(self) -> FleetGrid:
            return self.grid

    @dataclass
    class HostSelected(Message):
        """A host was chosen (enter or click) to see its detail."""

        grid: FleetGrid
        host: str

        @property
        def control(self) -> FleetGrid:
            return self.grid

    def __init__(
        self,
        hosts: Iterable[str] = (),
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._hosts: list[str] = []
        self._states: list[str] = []
        self._index: dict[str, int] = {}
        self._palette: Palette | None = None
        self._styles: dict[str, Style] = {}
        self._cursor_styles: dict[str, Style] = {}
        self._cell = 1  # columns per host: 1, or room for the glyph and the name
        self.set_hosts(hosts)

    # -- data ---------------------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        return self._hosts

    @property
    def current_host(self) -> str | None:
        return self._hosts[self.cursor] if self._hosts else None

    def state_of(self, host: str) -> str | None:
        index = self._index.get(host)
        return None if index is None else self._states[index]

    def set_hosts(self, hosts: Iterable[str], state: str = "waiting") -> None:
        """Replace the fleet; every host starts in `state`."""
        self._hosts = list(hosts)
        self._states = [state] * len(self._hosts)
        self._index = {h: i for i, h in enumerate(self._hosts)}
        if self.cursor >= len(self._hosts):
            self.cursor = 0
        self.refresh(layout=True)

    def update_states(self, states: Mapping[str, str]) -> None:
        """Set the state of some hosts (unknown hosts are appended)."""
        grew = False
        for host, state in states.items():
            index = self._index.get(host)
            if index is None:
                self._index[host] = len(self._hosts)
                self._hosts.append(host)
                self._states.append(state)
                grew = True
            else:
                self._states[index] = state
        self.refresh(layout=grew)

    # -- geometry -----------------------------------------------------------------
    @property
    def columns(self) -> int:
        """Hosts per row."""
        return max(1, self.content_size.width // self._cell)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        named = max((len(h) for h in self._hosts), default=0) + 3  # "■ web007  "
        rows_named = math.ceil(len(self._hosts) / max(1, width // named))
        self._cell = named if named <= width and rows_named <= max(2, container.height // 3) else 1
        return max(1, math.ceil(len(self._hosts) / max(1, width // self._cell)))

    def _cell_styles(self) -> None:
        """Build a Rich style per host state once per palette (the theme's colours)."""
        colors = palette(self)
        if colors is not self._palette:
            self._palette = colors
            self._styles = {s: Style(color=c) for s, c in colors.hosts.items()}
            self._cursor_styles = {s: Style(color=colors.cursor, bgcolor=c, bold=True) for s, c in colors.hosts.items()}

    def render_line(self, y: int) -> Strip:
        self._cell_styles()
        cols = self.columns
        start = y * cols
        states = self._states[start : start + cols]
        width = self.content_size.width
        if not states:
            return Strip.blank(width, self.rich_style)
        segments = self._named(start, states) if self._cell > 1 else self._dense(start, states)
        strip = Strip(segments)
        return strip.extend_cell_length(width).apply_style(self.rich_style)

    def _cursor_style(self, state: str) -> Style:
        return self._cursor_styles[state] if self.has_focus else self._styles[state] + Style(reverse=True)

    def _dense(self, start: int, states: list[str]) -> list[Segment]:
        """One character per host, in runs of one state."""
        cursor = self.cursor - start
        segments: list[Segment] = []
        run_state, run = states[0], 0
        for x, state in enumerate(states):
            if x == cursor:
                if run:
                    segments.append(Segment(GLYPHS.get(run_state, "?") * run, self._styles[run_state]))
                segments.append(Segment(GLYPHS.get(state, "?"), self._cursor_style(state)))
                run_state, run = state, 0
                continue
            if state != run_state and run:
                segments.append(Segment(GLYPHS.get(run_state, "?") * run, self._styles[run_state]))
                run = 0
            run_state = state
            run += 1
        if run:
            segments.append(Segment(GLYPHS.get(run_state, "?") * run, self._styles[run_state]))
        return segments

    def _named(self, start: int, states: list[str]) -> list[Segment]:
        """`■ web007` per host, each in a cell of the same width."""
        segments: list[Segment] = []
        for x, state in enumerate(states):
            name = self._hosts[start + x]
            cell = f"{GLYPHS.get(state, '?')} {name}"
            style = self._cursor_style(state) if start + x == self.cursor else self._styles[state]
            segments.append(Segment(cell, style))
            segments.append(Segment(" " * (self._cell - len(cell))))
        return segments

    # -- interaction --------------------------------------------------------------
    def watch_cursor(self, cursor: int) -> None:
        self.refresh()
        if self._hosts:
            self.post_message(self.HostHighlighted(self, self._hosts[cursor], self._states[cursor]))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_move(self, delta: int) -> None:
        if self._hosts:
            self.cursor = max(0, min(len(self._hosts) - 1, self.cursor + delta))

    def action_move_row(self, delta: int) -> None:
        self.action_move(delta * self.columns)

    def action_jump(self, index: int) -> None:
        if self._hosts:
            self.cursor = index % len(self._hosts)

    def action_next_failed(self) -> None:
        """Move to the next failed host after the cursor, wrapping around."""
        count = len(self._hosts)
        for step in range(1, count + 1):
            index = (self.cursor + step) % count
            if self._states[index] == "failed":
                self.cursor = index
                return
        self.notify("No failed hosts.", severity="information")

    def action_select(self) -> None:
        if self._hosts:
            self.post_message(self.HostSelected(self, self._hosts[self.cursor]))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        column = offset.x // self._cell
        index = offset.y * self.columns + column
        if 0 <= index < len(self._hosts) and column < self.columns:
            self.cursor = index
            self.post_message(self.HostSelected(self, self._hosts[index]))
