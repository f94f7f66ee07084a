"""Past deploys: who, what, how long, result, verdict."""

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
from console.tui.theme import Palette, palette
from console.tui.widgets.age_column import AgeColumn
from console.tui.widgets.stretch import stretch


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


class HistoryTable(DataTable):
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

    @property
    def current(self) -> DeployRecord | None:
        """The highlighted deploy."""
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        return self.records.get(str(key))

    def on_mount(self) -> None:
        for label, key, width in (
            ("deploy", "id", 24),  # a deploy id whole (20261202T011303Z-8b2c615); a switch's is cut
            ("when", "when", 6),
            ("who", "user", 12),
            ("action", "action", 7),
            ("from → to", "range", 17),
            ("commits", "commits", 7),
            ("took", "took", 8),
            ("result", "result", 8),
            ("verdict", "verdict", 9),
            ("message", "message", None),
        ):
            self.add_column(label, key=key, width=width)

    def show(self, records: Sequence[DeployRecord], now: float) -> None:
        colors = palette(self)
        keep = self.cursor_row
        self.clear()
        self.ages.clear()
        self.records = {rec.id: rec for rec in records}
        for rec in records:
            took = duration(rec.ended - rec.started) if rec.ended else "…"
            result = rec.result or "running"
            verdict = verdict_of(rec)
            verdict_style = {"ok": colors.ok, "degraded": f"bold {colors.failed}"}.get(verdict, "dim")
            self.add_row(
                plain(rec.id, 40, style="bold"),
                self.ages.cell(rec.id, rec.started, now),
                plain(rec.user, 40),
                plain(rec.action, 10),
                f"{short(rec.previous_revision, '-')} → {short(rec.revision, '-')}",
                str(rec.commits),
                took,
                Text(result, style=result_style(result, colors)),
                Text(verdict or "-", style=verdict_style),
                plain(rec.message),
                key=rec.id,
            )
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1))

    def on_resize(self) -> None:
        stretch(self, "message")

    def show_ages(self, now: float) -> None:
        """Keep the "when" column fresh (the console calls it every second)."""
        self.ages.refresh(self, now)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.DeployChosen(self, str(event.row_key.value)))
