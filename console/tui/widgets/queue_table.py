"""The queue: undeployed commits on trunk, newest on top, with review and DDL badges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from console.service import Change
from console.tui.format import plain
from console.tui.textual_fixes import CachedTable
from console.tui.theme import palette
from console.tui.widgets.age_column import AgeColumn
from console.tui.widgets.stretch import stretch


def blocked_reason(change: Change) -> str:
    """Why a commit can't go out in a normal deploy ('' when it can)."""
    reasons = []
    if not change.approved:
        reasons.append("not reviewed")
    if change.ddl:
        reasons.append("DDL")
    return ", ".join(reasons)


class QueueTable(CachedTable):
    """Undeployed commits; the highlighted one is what `d` deploys, enter opens it."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Commit detail", tooltip="The highlighted commit: every file, review, DDL"),
    ]

    @dataclass
    class _About(Message):
        """A message about a commit; `included` is what a deploy of it would ship."""

        table: QueueTable
        change: Change
        included: list[Change]

        @property
        def control(self) -> QueueTable:
            return self.table

    class ChangeHighlighted(_About):
        """The cursor is on a commit."""

    class ChangeChosen(_About):
        """Enter on a commit: open its detail."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.changes: list[Change] = []  # oldest first, as the service returns them
        self.ages = AgeColumn("age")

    def on_mount(self) -> None:
        self.add_column("review", key="review", width=10)
        self.add_column("DDL", key="ddl", width=4)
        self.add_column("commit", key="commit", width=8)
        self.add_column("subject", key="subject")
        self.add_column("author", key="author", width=16)
        self.add_column("age", key="age", width=5)

    @property
    def current(self) -> Change | None:
        if not self.changes or self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        return next((c for c in self.changes if c.sha == key), None)

    def included(self, change: Change) -> list[Change]:
        """The commits a deploy of `change` ships: every older queued commit and itself."""
        shas = [c.sha for c in self.changes]
        return self.changes[: shas.index(change.sha) + 1] if change.sha in shas else [change]

    def newest_deployable(self) -> Change | None:
        """The newest commit whose deploy ships no blocked commit (None: the oldest is blocked)."""
        newest = None
        for change in self.changes:  # oldest first: every later commit ships this one too
            if blocked_reason(change):
                break
            newest = change
        return newest

    def show(self, changes: Sequence[Change], now: float) -> None:
        """Replace the rows, keeping the cursor on the same commit when it is still queued,
        else putting it on the newest commit that can go out without an override."""
        colors = palette(self)
        keep = self.current.sha if self.current is not None else None
        self.changes = list(changes)
        self.clear()
        self.ages.clear()
        for change in reversed(self.changes):
            if change.approved:
                review = Text("✔ reviewed", style=colors.ok)
            else:
                review = Text("✘ review", style=f"bold {colors.failed}")
            ddl = Text("DDL", style=f"bold reverse {colors.attention}") if change.ddl else Text("")
            subject = plain(change.subject, style="" if not blocked_reason(change) else colors.blocked)
            if change.merge:
                subject = Text("⑂ ", style="dim") + subject
            self.add_row(
                review,
                ddl,
                Text(change.short, style=f"bold {colors.commit}"),
                subject,
                plain(change.author, 60),
                self.ages.cell(change.sha, change.time, now),
                key=change.sha,
            )
        if keep is None or not any(c.sha == keep for c in self.changes):
            deployable = self.newest_deployable()
            keep = deployable.sha if deployable is not None else None
        if keep is not None:
            self.move_cursor(row=self.get_row_index(keep))
        self._announce()

    def on_resize(self) -> None:
        stretch(self, "subject")

    def show_ages(self, now: float) -> None:
        """Keep the ages fresh (the console calls it every second)."""
        self.ages.refresh(self, now)

    def _announce(self) -> None:
        change = self.current
        if change is not None:
            self.post_message(self.ChangeHighlighted(self, change, self.included(change)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._announce()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        change = self.current
        if change is not None:
            self.post_message(self.ChangeChosen(self, change, self.included(change)))
