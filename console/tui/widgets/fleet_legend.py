"""The legend under the fleet grid: each host state's glyph and colour, and how many hosts are
in it; where all of them do not fit the width, the states no host is in are left out."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from console.core.progress import HOST_STATES
from console.tui.theme import palette
from console.tui.widgets.fleet_grid import GLYPHS


class FleetLegend(Widget):
    """`· waiting 12  a assets 30 …  of 500 hosts` on one line."""

    counts: reactive[dict[str, int]] = reactive(dict, always_update=True)
    """Hosts per state."""

    def __init__(
        self,
        counts: Mapping[str, int] | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.set_reactive(FleetLegend.counts, dict(counts or {}))

    def show(self, counts: Mapping[str, int]) -> None:
        self.counts = dict(counts)

    def render(self) -> Text:
        every = self._legend(HOST_STATES)
        if every.cell_len <= self.content_size.width:
            return every
        return self._legend([s for s in HOST_STATES if self.counts.get(s)])

    def _legend(self, states) -> Text:
        colors = palette(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        for state in states:
            text.append(f"{GLYPHS[state]} ", style=f"bold {colors.host(state)}")
            text.append(f"{state} ")
            text.append(f"{self.counts.get(state, 0)}", style="bold")
            text.append("  ")
        text.append(f"of {sum(self.counts.values())} hosts", style="dim")
        return text
