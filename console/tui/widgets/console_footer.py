"""The footer of every console screen: Textual's `Footer`, without its leak and its needless rebuilds.

Textual's `Footer` rebuilds all its keys (`recompose`) whenever the screen's bindings may
have changed, which Textual signals on every focus change, even when the keys shown stay
the same. Each new `FooterKey` binds `compact` to the footer (`data_bind`), which adds an
entry to the footer's watcher list for `compact`; Textual prunes that list only when
`compact` changes, which in this console it never does. So every rebuild kept all the old
keys alive and made the next rebuild slower (the list is scanned for each new key):
after a few hundred tab switches the console used a core and hundreds of MB
(issue 13; upstream: https://github.com/Textualize/textual/issues/6666, open in 8.2.8).

`ConsoleFooter` rebuilds only when the keys it would show differ from those it shows, and
after each rebuild drops the watcher entries of keys no longer in the DOM. The test
`test_footer_keys_stay_bounded_over_tab_switches` counts them; once Textual releases these
watchers itself, the release here finds nothing to drop and can go.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from textual.widgets import Footer

if TYPE_CHECKING:
    from textual.screen import Screen


class ConsoleFooter(Footer):
    """The screen's keys on one line, rebuilt only when they change."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        show_command_palette: bool = True,
        compact: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, show_command_palette=show_command_palette, compact=compact)
        self._shown: tuple[Hashable, ...] | None = None  # the keys of the last rebuild
        self._rebuild_pending = False
        self.rebuilds = 0
        """How many times the keys were rebuilt (tests and the soak bench read it)."""

    def _keys(self, screen: Screen) -> tuple[Hashable, ...]:
        """What a rebuild would show: every shown binding, whether enabled, its tooltip."""
        palette_key = self.app.COMMAND_PALETTE_BINDING
        return tuple(
            (key, binding, enabled, tooltip)
            for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items()
            if binding.show or key == palette_key
        )

    def bindings_changed(self, screen: Screen) -> None:
        """Textual's `Footer.bindings_changed`, but at most one rebuild pending, and none
        when the keys shown would stay the same."""
        self._bindings_ready = True
        if not screen.app.app_focus or self._rebuild_pending:
            return
        if self.is_attached and screen is self.screen and self._keys(screen) != self._shown:
            self._rebuild_pending = True
            self.call_after_refresh(self.recompose)

    async def recompose(self) -> None:
        self._rebuild_pending = False
        if not self.is_attached:
            return
        self._shown = self._keys(self.screen)
        self.rebuilds += 1
        await super().recompose()
        self._release_removed_keys()

    def _release_removed_keys(self) -> None:
        """Drop the `compact` watchers of keys a rebuild removed (what Textual does only
        when `compact` changes), so the old keys can be freed."""
        watchers: dict[str, list[tuple[object, object]]] = getattr(self, "__watchers", {})
        entries = watchers.get("compact")
        if entries:
            entries[:] = [(node, callback) for node, callback in entries if getattr(node, "is_attached", False)]

    @property
    def watcher_count(self) -> int:
        """Entries in the footer's `compact` watcher list (one per key shown, when none leak)."""
        return len(getattr(self, "__watchers", {}).get("compact", ()))
