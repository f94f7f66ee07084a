"""The legend under the fleet grid: each host state's colour and how many hosts are in it."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from console.core.progress import HOST_STATES
from console.tui.theme import palette
from console.tui.widgets.fleet_grid import CELL


class FleetLegend(Widget):
    """`■ waiting 12  ■ assets 30 …  of 500 hosts` on one line."""

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
        colors = palette(self)
        text = Text()
        for state in HOST_STATES:
            text.append(f"{CELL} ", style=colors.host(state))
            text.append(f"{state} ")
            text.append(f"{self.counts.get(state, 0)}", style="bold")
            text.append("   ")
        text.append(f"of {sum(self.counts.values())} hosts", style="dim")
        return text
