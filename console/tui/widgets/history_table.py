"""Past deploys: who, what, how long, result, verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from console.core.text import short
from console.tui.backend import ago, duration

RESULT_STYLES = {
    "ok": "bold #5fd75f",
    "partial": "bold #d7af00",
    "failed": "bold #ff3f3f",
    "aborted": "bold #ff8700",
    "running": "bold #5f87ff",
}


def verdict_of(record: Any) -> str:
    """`degraded` if any key metric was, else `ok`, else '' (a record's `verdict`, or its `verdicts`)."""
    verdict = getattr(record, "verdict", None)
    if verdict:
        return str(verdict)
    found = [v.verdict for v in getattr(record, "verdicts", ()) or () if not getattr(v, "dry_run", False)]
    if "degraded" in found:
        return "degraded"
    return "ok" if "ok" in found else ""


class HistoryTable(DataTable):
    """One row per deploy, newest on top; enter opens its hosts."""

    DEFAULT_CSS = """
    HistoryTable {
        height: 1fr;
    }
    """

    class DeployChosen(Message):
        """A deploy was opened."""

        def __init__(self, table: HistoryTable, deploy_id: str) -> None:
            super().__init__()
            self.table = table
            self.deploy_id = deploy_id

        @property
        def control(self) -> HistoryTable:
            return self.table

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for label, key, width in (
            ("deploy", "id", 16),
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

    def show(self, records: Sequence[Any], now: float) -> None:
        keep = self.cursor_row
        self.clear()
        for rec in records:
            ended = getattr(rec, "ended", None)
            took = duration(ended - rec.started) if ended else "…"
            result = getattr(rec, "result", None) or getattr(rec, "state", None) or "running"
            verdict = verdict_of(rec)
            verdict_style = {"ok": "#5fd75f", "degraded": "bold #ff3f3f"}.get(verdict, "dim")
            commits = getattr(rec, "commits", 0)
            if isinstance(commits, (list, tuple)):
                commits = len(commits)
            self.add_row(
                Text(str(rec.id), style="bold"),
                ago(now - rec.started) if now else "",
                rec.user,
                getattr(rec, "action", "deploy"),
                f"{short(rec.previous_revision, '-')} → {short(rec.revision, '-')}",
                str(commits),
                took,
                Text(result, style=RESULT_STYLES.get(result, "")),
                Text(verdict or "-", style=verdict_style),
                getattr(rec, "message", "") or "",
                key=str(rec.id),
            )
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.DeployChosen(self, str(event.row_key.value)))
