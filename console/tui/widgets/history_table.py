"""Past deploys: who, what, how long, result, verdict, laid out for the width there is.

The widest layout has every column; narrower ones leave out the deploy id (the detail shows
it), then the commit count, then the "from" commit and cut who deployed, so the table never
scrolls sideways at 80 columns and up. The message takes the width the others leave."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from console.core.text import short
from console.service import DeployRecord
from console.tui.format import duration, plain
from console.tui.textual_fixes import CachedTable
from console.tui.theme import Palette, palette
from console.tui.widgets.age_column import AgeColumn
from console.tui.widgets.stretch import stretch

#: Every column but the deploy id (key, width in cells).
_COLUMNS = (
    ("when", 4),
    ("user", 12),
    ("action", 6),
    ("range", 17),
    ("commits", 7),
    ("took", 7),
    ("result", 7),
    ("verdict", 8),
)
#: The columns of each layout, widest first; the message follows each, stretched.
LAYOUTS: tuple[tuple[tuple[str, int], ...], ...] = (
    (("id", 24), *_COLUMNS),  # a deploy id whole (20261202T011303Z-8b2c615); a switch's is cut
    _COLUMNS,
    tuple(c for c in _COLUMNS if c[0] != "commits"),
    (("when", 4), ("user", 8), ("action", 6), ("to", 7), ("took", 7), ("result", 7), ("verdict", 8)),
)
#: The message's width in any layout but the narrowest (what a failure says needs room).
MESSAGE_WIDTH = 20
#: The headers that are not their column's key.
LABELS = {"id": "deploy", "user": "who", "range": "from → to"}


def layout_for(width: int, padding: int = 1) -> tuple[tuple[str, int], ...]:
    """The widest layout whose columns, each padded by `padding` cells a side, leave the
    message `MESSAGE_WIDTH` of `width` (else the narrowest)."""
    for layout in LAYOUTS:
        if sum(w + 2 * padding for _, w in layout) + MESSAGE_WIDTH + 2 * padding <= width:
            return layout
    return LAYOUTS[-1]


def verdict_of(record: DeployRecord) -> str:
    """`degraded` if any key metric was (dry runs aside), else `ok`, else '' (no verdict yet)."""
    found = [v.verdict for v in record.verdicts if not v.dry_run]
    if "degraded" in found:
        return "degraded"
    return "ok" if "ok" in found else ""


def result_style(result: str, colors: Palette) -> str:
    """The style of a deploy's result: ok, partial, failed, aborted or running."""
    color = {
        "ok": colors.ok,
        "partial": colors.caution,
        "failed": colors.failed,
        "aborted": colors.attention,
        "running": colors.running,
    }.get(result)
    return f"bold {color}" if color else ""


class HistoryTable(CachedTable):
    """One row per deploy, newest on top; enter opens its hosts."""

    BINDINGS = [
        Binding(
            "enter", "select_cursor", "Deploy detail", tooltip="The highlighted deploy: its hosts, result, verdicts"
        ),
    ]

    @dataclass
    class DeployChosen(Message):
        """A deploy was opened."""

        table: HistoryTable
        deploy_id: str

        @property
        def control(self) -> HistoryTable:
            return self.table

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.records: dict[str, DeployRecord] = {}
        self.ages = AgeColumn("when")
        self.column_layout: tuple[tuple[str, int], ...] = ()
        self._now = 0.0  # the clock of the rows shown (a new layout shows them again)

    @property
    def current(self) -> DeployRecord | None:
        """The highlighted deploy."""
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        return self.records.get(str(key))

    def on_mount(self) -> None:
        self._lay_out(LAYOUTS[0])

    def _lay_out(self, layout: tuple[tuple[str, int], ...]) -> None:
        """Columns of `layout` and the message, with the rows shown again."""
        keep = self.cursor_row
        self.column_layout = layout
        self.clear(columns=True)
        for key, width in (*layout, ("message", None)):
            self.add_column(LABELS.get(key, key), key=key, width=width)
        self._fill(list(self.records.values()), self._now, keep)

    def show(self, records: Sequence[DeployRecord], now: float) -> None:
        self._fill(records, now, self.cursor_row)

    def _fill(self, records: Sequence[DeployRecord], now: float, keep: int) -> None:
        """The rows of `records`, the cursor on row `keep` (or the last)."""
        colors = palette(self)
        self.clear()
        self.ages.clear()
        self.records = {rec.id: rec for rec in records}
        self._now = now
        for rec in records:
            cells = self._cells(rec, now, colors)
            self.add_row(*(cells[key] for key, _ in self.column_layout), cells["message"], key=rec.id)
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1))

    def _cells(self, rec: DeployRecord, now: float, colors: Palette) -> dict[str, str | Text]:
        """Every column's cell of `rec`, by key (a layout shows some of them)."""
        result = rec.result or "running"
        verdict = verdict_of(rec)
        verdict_style = {"ok": colors.ok, "degraded": f"bold {colors.failed}"}.get(verdict, "dim")
        return {
            "id": plain(rec.id, 40, style="bold"),
            "when": self.ages.cell(rec.id, rec.started, now),
            "user": plain(rec.user, 40),
            "action": plain(rec.action, 10),
            "range": f"{short(rec.previous_revision, '-')} → {short(rec.revision, '-')}",
            "to": short(rec.revision, "-"),
            "commits": str(rec.commits),
            "took": duration(rec.ended - rec.started) if rec.ended else "…",
            "result": Text(result, style=result_style(result, colors)),
            "verdict": Text(verdict or "-", style=verdict_style),
            "message": plain(rec.message),
        }

    def on_resize(self) -> None:
        layout = layout_for(self.scrollable_content_region.width, self.cell_padding)
        if layout != self.column_layout:
            self._lay_out(layout)
        stretch(self, "message")

    def show_ages(self, now: float) -> None:
        """Keep the "when" column fresh (the console calls it every second)."""
        self._now = now
        self.ages.refresh(self, now)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.DeployChosen(self, str(event.row_key.value)))
