"""A progress bar per deploy phase: how many hosts finished it, how long it took."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from console.core.events import LOCAL_PHASES, PHASES
from console.core.progress import PhaseView
from console.tui.format import duration
from console.tui.theme import palette


class PhaseBars(Widget):
    """One line per phase: name, bar, done/total, state and seconds."""

    phases: reactive[dict[str, PhaseView]] = reactive(dict, always_update=True, layout=True)
    """Phase name -> its view."""

    done: reactive[dict[str, int]] = reactive(dict, always_update=True)
    """Phase name -> hosts that finished it so far (ok or failed)."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)

    def show(self, phases: Mapping[str, PhaseView], done: Mapping[str, int]) -> None:
        self.set_reactive(PhaseBars.done, dict(done))
        self.phases = dict(phases)

    def _names(self) -> list[str]:
        names = [p for p in PHASES if p in self.phases] or list(PHASES)
        return names + [p for p in self.phases if p not in names]

    def get_content_height(self, container, viewport, width) -> int:
        return len(self._names())

    def render(self) -> Text:
        colors = palette(self)
        width = max(20, self.content_size.width)
        # name 13 + count 12 + state 9 + seconds 9 + failures 12
        bar_width = max(10, min(80, width - 13 - 12 - 9 - 9 - 12))
        text = Text(no_wrap=True, overflow="crop")
        for i, name in enumerate(self._names()):
            phase = self.phases.get(name) or PhaseView(name)
            local = name in LOCAL_PHASES
            if local or phase.hosts == 0:
                total = 1
                done = 1 if phase.state == "done" else 0
            else:
                total = phase.hosts
                done = min(total, self.done.get(name, 0))
                if phase.state == "done":
                    done = total
            filled = round(bar_width * done / total) if total else 0
            failed = phase.failed
            colour = {"running": colors.running, "done": colors.ok}.get(phase.state, colors.pending)
            if phase.state == "done" and failed:
                colour = colors.caution
            if i:
                text.append("\n")
            text.append(f"{name:<12} ", style="bold" if phase.state == "running" else "")
            text.append("━" * filled, style=colour)
            text.append("━" * (bar_width - filled), style=colors.track)
            count = "local" if local else f"{done}/{phase.hosts or '-'}"
            text.append(f" {count:>11}")
            state = phase.state if not phase.skipped else "skipped"
            text.append(f" {state:<8}", style=colour)
            if phase.state == "done":
                text.append(f" {duration(phase.seconds):>8}", style="dim")
            if failed:
                text.append(f"  {failed} failed", style=colors.failed)
            if phase.skipped:
                text.append(f"  {phase.skipped}", style="dim")
        return text
