"""Textual bugs the console works around, until Textual fixes them.

`patch()` (applied by `console.tui.app`): `StylesCache.get_inner_outer` is an instance
method under `functools.lru_cache(1024)`, so the cache's keys hold the `StylesCache` of
every widget that was ever painted, and with it that widget's cache of rendered lines,
after the widget is gone: each dialog opened and closed, each deploy's activity lines,
left a few hundred KB behind. The soak bench saw the console grow by about 230 MB an hour
(https://github.com/Textualize/textual/issues/6665, open in 8.2.8). The method does not
use `self`; here it is cached by its two colours only. If Textual stops caching it per
instance, `patch()` finds no `lru_cache` there and leaves it alone.

`patch()` also: `Strip.render_ansi` is under `lru_cache(16384)` keyed on the whole Rich
style, whose metadata (a table cell's row and column, a footer key's action) makes nearly
every style new: the soak saw some 80 more entries per round, each keeping a style alive,
for hours before the cache is full. The codes are kept on the style itself
(`style._ansi`, which `Strip.render_style` reads first), so the cache saves nothing that
lives; here the function runs uncached.

`patch()` also: `TabbedContent.active`, `ContentSwitcher.current` and `Screen.focused` are
reactives that repaint their widget, and repainting a widget drops every line it had drawn.
These three draw only their own background, under children that repaint themselves when
they change, so each tab switch drew the screen, the tabbed content and its switcher afresh
(127 lines of 214 at 160x45) and composed the whole screen again: about a quarter of a
switch's time (textual 8.2.8). Here they change without a repaint of their own.

`CachedTable`, the console's `DataTable`: see there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from rich.style import Style as RichStyle
from textual import events
from textual._styles_cache import StylesCache
from textual.cache import LRUCache
from textual.color import Color
from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.screen import Screen
from textual.strip import Strip
from textual.style import Style
from textual.widget import PseudoClasses
from textual.widgets import ContentSwitcher, DataTable, TabbedContent
from textual.widgets.data_table import CellType, ColumnKey, RowKey


@lru_cache(1024)
def _inner_outer(base_background: Color, background: Color) -> tuple[Style, Style]:
    return Style(background=base_background + background), Style(background=base_background)


def _get_inner_outer(self: StylesCache, base_background: Color, background: Color) -> tuple[Style, Style]:
    """Get inner and outer background colors (cached by the colours, not by the instance)."""
    return _inner_outer(base_background, background)


#: Reactives whose change repaints nothing of their widget's own (the module doc says why).
_NO_REPAINT = ((TabbedContent, "active"), (ContentSwitcher, "current"), (Screen, "focused"))


def patch() -> None:
    """Cache `StylesCache.get_inner_outer` by its colours, `Strip.render_ansi` not at all
    (once each; a no-op where fixed upstream), and let `_NO_REPAINT` change without a
    repaint."""
    for owner, name in _NO_REPAINT:
        found = owner.__dict__.get(name)
        if isinstance(found, Reactive):  # else Textual moved it: nothing to change
            found._repaint = False
    clear = getattr(StylesCache.__dict__.get("get_inner_outer"), "cache_clear", None)
    if clear is not None:
        clear()  # drop the instances it holds already
        StylesCache.get_inner_outer = _get_inner_outer  # type: ignore[method-assign,assignment]  # the workaround itself
    cached = getattr(Strip.__dict__.get("render_ansi"), "__func__", None)
    uncached = getattr(cached, "__wrapped__", None)
    clear = getattr(cached, "cache_clear", None)
    if uncached is not None and clear is not None:
        clear()
        Strip.render_ansi = classmethod(uncached)  # type: ignore[method-assign,assignment]  # the workaround itself


class CachedTable(DataTable):
    """A `DataTable` that keeps what it rendered when only its focus (or hover) changes, and
    renders again only the cells that changed (`rewrite_cells`).

    A table clears every cache of rendered cells, rows and lines whenever its styles are
    updated, and gaining or losing the focus is such an update, though each cache is keyed
    on the focus already. A tab switch moves the focus to the table of the tab brought to
    the front, so each switch rendered its table's every visible cell again: 13 ms of a
    40 ms switch to History (40 rows, textual 8.2.8). Here the caches stay, unless what
    the table looks like in its focus state (its style and its components' styles) is not
    what it was when that state was last rendered: then they go, as before. Likewise a
    table shown again gets a `Resize` to the size it had, which made it render everything
    again too: here only a new size does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._looks: dict[PseudoClasses, tuple[RichStyle, ...]] = {}
        self._restyled = True  # the first render says what it looked like
        self._sized: tuple[Size, Size, Size] | None = None

    def notify_style_update(self) -> None:
        super(DataTable, self).notify_style_update()  # the widget's own caches, not the table's
        self._get_styles_to_render_cell.cache_clear()  # keyed without the focus
        self._restyled = True
        self.refresh()

    def _on_resize(self, event: events.Resize) -> None:
        sized = (event.size, event.virtual_size, event.container_size)
        if sized == self._sized:
            event.prevent_default()  # Textual calls DataTable's own handler after this one
        self._sized = sized

    def render_lines(self, crop: Region) -> list[Strip]:
        if self._restyled:  # the components' styles are updated after `notify_style_update`
            self._restyled = False
            state = self.get_pseudo_class_state()
            look = (self.rich_style, *(self.get_component_rich_style(c) for c in sorted(self._get_component_classes())))
            if self._looks.get(state, look) != look:  # restyled for real: nothing cached holds
                self._looks = {}
                self._clear_caches()
            self._looks[state] = look
        return super().render_lines(crop)

    def rewrite_cells(self, cells: Iterable[tuple[str, str, CellType]]) -> None:
        """Put `(row key, column key, value)` in their cells and render those cells again,
        and only those.

        `update_cell` moves on the count that every cache of the table is keyed on, so one
        changed cell made the table render every visible cell again (and kept the dead
        renders, up to 10,000 cells, until the cache was full). A History tab of 20 deploys,
        whose ages change at different seconds, rendered its 220 cells every three seconds:
        60 ms each time, most of the idle console's CPU (textual 8.2.8). Here the count
        stays; the renders of the changed cells, of their rows and of their lines go. (All
        lines went, at first: joined again from the rows' renders at the next full paint,
        at every switch to History: its 40 visible lines at 160x45.) The value must keep
        the cell's height and the column's width, as an age does."""
        keyed = [(RowKey(row), ColumnKey(column), value) for row, column, value in cells]
        if not keyed:
            return
        for row_key, column_key, value in keyed:
            self._data[row_key][column_key] = value
        changed = {(row_key, column_key) for row_key, column_key, _ in keyed}
        rows = {row_key for row_key, _ in changed}
        indices = {self._row_locations.get(row_key) for row_key in rows}
        # keys: (row key, column key, style, ..., update count, ...); (row key, line, ...);
        # (update count, row index); (y, ...)
        _discard(self._cell_render_cache, lambda key: (key[0], key[1]) in changed)
        _discard(self._row_render_cache, lambda key: key[0] in rows)
        _discard(self._row_renderable_cache, lambda key: key[1] in indices)
        _discard(self._line_cache, lambda key: self._row_at(key[0]) in rows)
        for index in indices:
            if index is not None:
                self.refresh_row(index)

    def _row_at(self, y: int) -> RowKey | None:
        """The row drawn on line `y` of the table (None: none, or the header)."""
        try:
            return self._get_offsets(y)[0]
        except LookupError:
            return None


def _discard(cache: LRUCache[Any, Any], stale: Callable[[Any], bool]) -> None:
    """Drop the entries of `cache` whose key is `stale`."""
    for key in [key for key in cache.keys() if stale(key)]:  # noqa: SIM118 - an LRUCache is not iterable
        cache.discard(key)
