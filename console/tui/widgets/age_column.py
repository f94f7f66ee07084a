"""A table column of "how long ago" texts (`5s`, `4m`) that stay fresh: the console's tick
rewrites the cells whose text has changed, and the table renders only those again
(`CachedTable.rewrite_cells`)."""

from __future__ import annotations

from console.tui.format import ago
from console.tui.textual_fixes import CachedTable


class AgeColumn:
    """The ages of one column of a `DataTable`, by row key."""

    def __init__(self, column: str) -> None:
        self.column = column
        self._times: dict[str, float] = {}
        self._shown: dict[str, str] = {}

    def cell(self, row: str, ts: float, now: float) -> str:
        """The text of a new row's cell (`now` 0: no clock, no age)."""
        self._times[row] = ts
        self._shown[row] = ago(now - ts) if now else ""
        return self._shown[row]

    def clear(self) -> None:
        """The table was cleared."""
        self._times.clear()
        self._shown.clear()

    def refresh(self, table: CachedTable, now: float) -> None:
        """Rewrite the cells that read differently at `now`."""
        changed = []
        for row, ts in self._times.items():
            text = ago(now - ts)
            if text != self._shown[row]:
                self._shown[row] = text
                changed.append((row, self.column, text))
        table.rewrite_cells(changed)
