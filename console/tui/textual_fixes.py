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

`drop_dead_renders(table)`: see there.
"""

from __future__ import annotations

from functools import lru_cache

from textual._styles_cache import StylesCache
from textual.color import Color
from textual.strip import Strip
from textual.style import Style
from textual.widgets import DataTable


@lru_cache(1024)
def _inner_outer(base_background: Color, background: Color) -> tuple[Style, Style]:
    return Style(background=base_background + background), Style(background=base_background)


def _get_inner_outer(self: StylesCache, base_background: Color, background: Color) -> tuple[Style, Style]:
    """Get inner and outer background colors (cached by the colours, not by the instance)."""
    return _inner_outer(base_background, background)


def patch() -> None:
    """Cache `StylesCache.get_inner_outer` by its colours, and `Strip.render_ansi` not at
    all (once each; a no-op where fixed upstream)."""
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


def drop_dead_renders(table: DataTable) -> None:
    """Free what `table` rendered before its cells last changed.

    A `DataTable` keys its caches of rendered cells (up to 10,000), rows and lines (1,000
    each) on a count that every `update_cell` moves on, so nothing rendered before an
    update is looked up again, yet it stays until the cache is full. A table whose ages
    tick every second (`AgeColumn`) filled them with dead renders: megabytes per table, most
    of the soak's RSS growth (textual 8.2.8). Clearing them costs nothing: after the update
    every line is rendered again anyway."""
    table._clear_caches()
