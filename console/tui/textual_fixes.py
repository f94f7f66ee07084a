"""A Textual bug the console works around, until Textual fixes it (applied by `console.tui.app`).

`StylesCache.get_inner_outer` is an instance method under `functools.lru_cache(1024)`, so
the cache's keys hold the `StylesCache` of every widget that was ever painted, and with it
that widget's cache of rendered lines, after the widget is gone: each dialog opened and
closed, each deploy's activity lines, left a few hundred KB behind. The soak bench saw the
console grow by about 230 MB an hour
(https://github.com/Textualize/textual/issues/6665, open in 8.2.8).

The method does not use `self`; here it is cached by its two colours only. If Textual stops
caching it per instance, `patch()` finds no `lru_cache` there and leaves it alone.
"""

from __future__ import annotations

from functools import lru_cache

from textual._styles_cache import StylesCache
from textual.color import Color
from textual.style import Style


@lru_cache(1024)
def _inner_outer(base_background: Color, background: Color) -> tuple[Style, Style]:
    return Style(background=base_background + background), Style(background=base_background)


def _get_inner_outer(self: StylesCache, base_background: Color, background: Color) -> tuple[Style, Style]:
    """Get inner and outer background colors (cached by the colours, not by the instance)."""
    return _inner_outer(base_background, background)


def patch() -> None:
    """Cache `StylesCache.get_inner_outer` by its colours (once; a no-op when fixed upstream)."""
    clear = getattr(StylesCache.__dict__.get("get_inner_outer"), "cache_clear", None)
    if clear is not None:
        clear()  # drop the instances it holds already
        StylesCache.get_inner_outer = _get_inner_outer  # type: ignore[method-assign,assignment]  # the workaround itself
