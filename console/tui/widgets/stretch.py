"""A table column that takes the width the other columns leave, so a table fits the terminal
it is in: no horizontal scrollbar at 80 columns, no empty band at 200 (the queue's subject,
the history's message)."""

from __future__ import annotations

from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

#: The narrowest the stretched column gets.
MIN_WIDTH = 12


def stretch(table: DataTable, key: str) -> None:
    """Give column `key` of `table` the width its other columns leave."""
    column = table.columns.get(ColumnKey(key))
    if column is None or not table.size.width:
        return
    others = sum(c.get_render_width(table) for k, c in table.columns.items() if k != column.key)
    width = max(MIN_WIDTH, table.scrollable_content_region.width - others - 2 * table.cell_padding)
    if column.auto_width or column.width != width:
        column.auto_width, column.width = False, width
        table._require_update_dimensions = True  # what DataTable.add_column sets: widths changed
        table.refresh()
