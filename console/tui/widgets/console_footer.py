"""The footer of every console screen: the keys that work here, on one line.

Why not Textual's `Footer`: it rebuilds itself, a widget per key, whenever the screen's
bindings may have changed, which Textual signals on every focus change. That cost 70 ms of
CPU per tab switch here, and each rebuild leaked: every `FooterKey` binds `compact` to the
footer (`data_bind`), and Textual drops that watcher only when `compact` changes, which
never happens, so every old key stayed alive and each rebuild scanned a longer list. After
a few hundred tab switches the console used a core and hundreds of MB (issue 13; upstream:
https://github.com/Textualize/textual/issues/6666, open in 8.2.8).

`ConsoleFooter` is one widget that renders the keys as one line of text, and repaints it
only when the keys change. It lays them out for the width it has, as k9s and btop do: with
room to spare as Textual's footer does; narrower, compact; narrower still, it leaves out
the tab keys (each tab's label shows its number) and then the last keys, but never the
help key, which lists them all. A click on a key presses it; hovering shows its tooltip.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


@dataclass(frozen=True)
class FooterEntry:
    """One key as the footer shows it."""

    key: str  # what a click presses
    display: str  # how the key reads: `d`, `^p`, `⏎`
    description: str
    action: str
    enabled: bool
    tooltip: str


class ConsoleFooter(Widget):
    """The keys of the screen and its focused widget, on one line, laid out for the width."""

    COMPONENT_CLASSES = {"console-footer--key", "console-footer--description", "console-footer--disabled"}

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.entries: tuple[FooterEntry, ...] = ()
        """The keys shown now, in the screen's order (what fits the width is `shown`)."""
        self.palette: FooterEntry | None = None
        """The command palette's key, on the right."""
        self.shown: tuple[FooterEntry, ...] = ()
        """The entries that fit the width, as last rendered."""
        self.repaints = 0
        """How many times the keys changed (tests and the soak bench read it)."""
        self._spans: list[tuple[int, int, FooterEntry]] = []  # (start, end) column of each key

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if screen is not self.screen:
            return
        palette_key = self.app.COMMAND_PALETTE_BINDING
        entries: list[FooterEntry] = []
        palette: FooterEntry | None = None
        actions: set[str] = set()
        for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items():
            entry = FooterEntry(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                enabled,
                tooltip or binding.tooltip or binding.description,
            )
            if key == palette_key:
                palette = entry if self.app.ENABLE_COMMAND_PALETTE else None
            elif binding.show and binding.action not in actions:  # one entry per action, as Footer
                actions.add(binding.action)
                entries.append(entry)
        if (tuple(entries), palette) != (self.entries, self.palette):
            self.entries, self.palette = tuple(entries), palette
            self.repaints += 1
            self.refresh()

    # -- layout -----------------------------------------------------------------------
    def fit(self, width: int) -> tuple[tuple[FooterEntry, ...], bool]:
        """The entries that fit `width` columns, and whether compact."""
        room = width - (self._width([self.palette], False) + 1 if self.palette is not None else 0)
        entries = list(self.entries)
        for compact in (False, True):
            if self._width(entries, compact) <= room:
                return tuple(entries), compact
        # the tab keys go first (each tab's label has its number), then the last keys, not help
        entries = [e for e in entries if not e.action.startswith("tab(")]
        while entries and self._width(entries, True) > room:
            droppable = [i for i, e in enumerate(entries) if e.action != "help"]
            if not droppable:
                break
            entries.pop(droppable[-1])
        return tuple(entries), True

    @staticmethod
    def _width(entries: Iterable[FooterEntry], compact: bool) -> int:
        gap = 1 if compact else 0
        return sum(len(_key_text(e, compact)) + len(_description_text(e, compact)) + gap for e in entries)

    def render(self) -> Text:
        width = self.size.width
        shown, compact = self.fit(width)
        self.shown = shown
        key_style = self.get_component_rich_style("console-footer--key")
        description_style = self.get_component_rich_style("console-footer--description")
        disabled = self.get_component_rich_style("console-footer--disabled")
        text = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []
        for entry in shown:
            start = text.cell_len
            text.append(_key_text(entry, compact), key_style if entry.enabled else key_style + disabled)
            text.append(_description_text(entry, compact), description_style if entry.enabled else disabled)
            self._spans.append((start, text.cell_len, entry))
            if compact:
                text.append(" ")
        if self.palette is not None:
            palette = Text(no_wrap=True, end="")
            palette.append(_key_text(self.palette, compact), key_style)
            palette.append(_description_text(self.palette, compact), description_style)
            start = max(text.cell_len + 1, width - palette.cell_len)
            text.append(" " * (start - text.cell_len))
            self._spans.append((start, start + palette.cell_len, self.palette))
            text.append_text(palette)
        return text

    # -- the mouse --------------------------------------------------------------------
    def _entry_at(self, x: int) -> FooterEntry | None:
        return next((entry for start, end, entry in self._spans if start <= x < end), None)

    def on_click(self, event: events.Click) -> None:
        entry = self._entry_at(event.x)
        if entry is None:
            return
        if entry.enabled:
            self.app.simulate_key(entry.key.split(",")[0])
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        entry = self._entry_at(event.x)
        self.tooltip = entry.tooltip if entry is not None else None


def _key_text(entry: FooterEntry, compact: bool) -> str:
    return entry.display if compact else f" {entry.display} "


def _description_text(entry: FooterEntry, compact: bool) -> str:
    return f" {entry.description}" if compact else f"{entry.description} "
