"""Layout for the terminal there is (issue 13, item 6): at 80x24 the lists keep their rows and
nothing wraps; at 220x60 a small fleet's grid names its hosts and the tables use the width;
each host state has a glyph of its own, so the grid reads without colour too."""

from __future__ import annotations

import dataclasses
import time

import pytest
from textual.color import Color
from textual.widgets import TabbedContent

from console.core.progress import HOST_STATES
from console.tui.widgets.fleet_grid import GLYPHS, FleetGrid
from console.tui.widgets.fleet_legend import FleetLegend
from console.tui.widgets.history_table import HistoryTable
from console.tui.widgets.queue_table import QueueTable
from console.tui.widgets.status_header import StatusHeader
from console.tui.widgets.stretch import MIN_WIDTH
from support.pilot import pilot_test, rendered, until
from support.tui_fixtures import NOW, FakeService, LockInfo, make_app, running_service

pytestmark = pytest.mark.timeout(60)


def test_every_host_state_has_a_glyph_of_its_own():
    assert set(GLYPHS) == set(HOST_STATES)
    assert len(set(GLYPHS.values())) == len(GLYPHS)


@pilot_test
async def test_at_80x24_the_queue_keeps_its_rows_and_the_header_its_two_lines():
    service = running_service(500)
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.console_screen
        table = screen.query_one(QueueTable)
        await until(pilot, lambda: table.row_count == 5 and screen.events == len(service.streams["d-0042"]))
        await pilot.pause(0.2)
        assert screen.has_class("-short")
        assert table.size.height >= 1 + 5  # the column labels and every commit
        assert table.virtual_size.width <= table.size.width  # no sideways scrolling
        assert screen.query_one(StatusHeader).size.height == 2
        assert screen.query_one(TabbedContent).region.y == 2  # the header did not wrap
        await pilot.press("2")
        await pilot.pause(0.2)
        grid, legend = screen.query_one(FleetGrid), screen.query_one(FleetLegend)
        assert grid.size.height == -(-500 // grid.columns)  # every host has its cell on screen
        assert legend.render().cell_len <= legend.content_size.width  # the states no host is in go first


@pilot_test
async def test_at_220x60_a_small_fleet_names_its_hosts_and_the_tables_fill_the_width():
    service = running_service(20)
    app = make_app(service)
    async with app.run_test(size=(220, 60)) as pilot:
        screen = app.console_screen
        queue = screen.query_one(QueueTable)
        await until(pilot, lambda: queue.row_count == 5 and screen.events == len(service.streams["d-0042"]))
        await pilot.pause(0.2)
        assert not screen.has_class("-short")
        assert queue.virtual_size.width >= queue.size.width - 4  # the subject takes what is left
        await pilot.press("2")
        await pilot.pause(0.2)
        grid = screen.query_one(FleetGrid)
        first = grid.render_line(0).text
        assert f"{GLYPHS['restarting']} web001" in first and f"{GLYPHS['failed']} web017" in first
        await pilot.press("4")
        history = screen.query_one(HistoryTable)
        await until(pilot, lambda: history.row_count == 4)
        await pilot.pause(0.2)
        assert history.virtual_size.width >= history.size.width - 4


def long_history(service: FakeService, n: int = 50) -> None:
    """`n` deploys named as the engine names them (`20261202T011303Z-8b2c615`, 24
    characters), by a user with a display name, with long messages: more rows than fit."""
    records = []
    for i in range(n):
        rec = service.records[i % len(service.records)]
        started = rec.started - 600 * i
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
        records.append(
            dataclasses.replace(
                rec,
                id=f"{stamp}-{(rec.revision or '')[:7]}",
                user="alice (Alice Smith)",
                started=started,
                ended=(rec.ended or started) - 600 * i,
                message=rec.message + ", and a long way to explain it " * 3,
            )
        )
    service.records = records


def columns(table: HistoryTable) -> list[str]:
    return [str(c.label) for c in table.ordered_columns]


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40)], ids=["80x24", "100x30", "120x40"])
@pilot_test
async def test_the_history_never_scrolls_sideways(size):
    """Each width gets the columns that fit: who, when, to what, how long, the result and
    the verdict always; the deploy id and the commit count where there is room."""
    service = FakeService(hosts=10)
    long_history(service)
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await pilot.press("4")
        table = app.console_screen.query_one(HistoryTable)
        await until(pilot, lambda: table.row_count == 50)
        await pilot.pause(0.2)
        assert table.virtual_size.height > table.scrollable_content_region.height  # a vertical scrollbar
        assert table.virtual_size.width <= table.scrollable_content_region.width  # and no sideways scrolling
        shown = columns(table)
        for label in ("when", "who", "action", "took", "result", "verdict"):
            assert label in shown
        assert shown[-1] == "message" and table.ordered_columns[-1].width >= MIN_WIDTH
        width = size[0]
        assert ("from → to" in shown) == (width >= 100) and ("to" in shown) == (width < 100)
        assert ("commits" in shown) == (width >= 120)
        assert "deploy" not in shown  # the detail (enter) names it
        assert table.current is service.records[0]


@pilot_test
async def test_the_history_lays_out_again_when_the_terminal_narrows():
    service = FakeService(hosts=10)
    long_history(service)
    app = make_app(service)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("4")
        table = app.console_screen.query_one(HistoryTable)
        await until(pilot, lambda: table.row_count == 50)
        await pilot.press("down", "down", "down")
        chosen = table.current
        assert columns(table)[:3] == ["deploy", "when", "who"] and "commits" in columns(table)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.3)
        assert "deploy" not in columns(table) and "commits" not in columns(table)
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.row_count == 50 and table.current is chosen  # the rows and the cursor stay
        await pilot.resize_terminal(200, 50)
        await pilot.pause(0.3)
        assert columns(table)[0] == "deploy" and table.current is chosen


@pilot_test
async def test_the_header_names_the_deploy_holding_the_lock_by_its_short_commit():
    """The engine's lock reason is `deploy <40-character SHA>`: in the header it would push
    what is live off the line."""
    service = FakeService(hosts=10)
    sha = "8b2c6153ece7b6c2d8ec1374e04dbb8b93f281d2"
    service.lock = LockInfo("grace", f"deploy {sha}", NOW - 3)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        header = app.console_screen.query_one(StatusHeader)
        await until(pilot, lambda: header.lock_info is not None and header.live is not None)
        shown = rendered(header)
        assert "held by grace for 3s: deploy 8b2c615  live 0badc0d" in shown and sha not in shown


def _luminance(color: Color) -> float:
    """WCAG 2's relative luminance."""
    r, g, b = (c / 255 for c in color.rgb)
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pilot_test
async def test_the_highlighted_row_reads_at_a_contrast_of_at_least_4_5():
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.console_screen.query_one(QueueTable).row_count == 5)
        variables = app.get_css_variables()
        fg, bg = (Color.parse(variables[f"block-cursor-{part}"]) for part in ("foreground", "background"))
        light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5
