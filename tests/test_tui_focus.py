"""Pilot tests of the console over a long session: tab switches keep the focus where the
person is, settle when they stop, and leave nothing behind (issue 13, items 1 and 6)."""

from __future__ import annotations

import asyncio
import gc

import pytest
from textual import events
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import TabbedContent

from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.widgets.fleet_grid import FleetGrid
from console.tui.widgets.history_table import HistoryTable
from console.tui.widgets.queue_table import QueueTable
from support.pilot import pilot_test, rendered, until
from support.tui_fixtures import FakeService, make_app

pytestmark = pytest.mark.timeout(120)


def type_keys(app, *keys: str) -> None:
    """Keys as a terminal sends them, back to back, without waiting for the app in between."""
    for key in keys:
        event = events.Key(key, key)
        event.set_sender(app)
        app._driver.send_message(event)


@pilot_test
async def test_the_footer_stays_one_widget_over_tab_switches():
    """Textual's Footer rebuilt a widget per key on every focus change and leaked the old
    ones (textual#6666); the console's footer is one widget, repainted when its keys change."""
    app = make_app(FakeService(hosts=50))
    async with app.run_test(size=(200, 45)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.query_one(QueueTable).row_count == 5)
        footer = screen.query_one(ConsoleFooter)
        gc.collect()
        widgets = sum(1 for o in gc.get_objects() if isinstance(o, Widget))
        for i in range(80):
            await pilot.press("1234"[i % 4])
        await pilot.pause(0.3)
        assert not footer.children
        assert footer.repaints <= 80 + 2  # each pane has keys of its own (enter, f): a repaint per switch
        gc.collect()
        assert sum(1 for o in gc.get_objects() if isinstance(o, Widget)) <= widgets + 5
        shown = rendered(footer)
        assert "⏎ Deploy detail " in shown and " d Deploy " in shown and " ? Help " in shown  # the history tab


@pilot_test
async def test_the_footer_keeps_help_in_reach_at_80_columns():
    app = make_app(FakeService(hosts=50))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.query_one(QueueTable).row_count == 5)
        footer = screen.query_one(ConsoleFooter)
        await pilot.pause(0.1)
        shown = rendered(footer)
        assert len(shown) <= 80 and "? Help" in shown and "d Deploy" in shown and "^p palette" in shown
        assert not any(e.action.startswith("tab(") for e in footer.shown)  # the tabs' labels have the numbers
        # a click on a key presses it
        x = shown.index("? Help")
        await pilot.click(ConsoleFooter, offset=(x, 0))
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")


@pilot_test
async def test_quick_tab_switches_settle_on_the_last():
    """`2 4 1 3 2` typed faster than the console handles them: each tab comes to the front
    once, in order, the fleet tab stays in front with its grid focused, and nothing moves
    afterwards (a late Focus event used to pull its tab back, and two could chase each
    other for as long as the console ran)."""
    app = make_app(FakeService(hosts=50))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        tabs = screen.query_one(TabbedContent)
        await until(pilot, lambda: screen.query_one(QueueTable).row_count == 5)
        fronts: list[str] = []
        focus_changes: list[object] = []
        tabs.watch(tabs, "active", lambda active: fronts.append(active), init=False)
        screen.watch(screen, "focused", lambda focused: focus_changes.append(focused), init=False)
        type_keys(app, "2", "4", "1", "3", "2")
        await until(pilot, lambda: len(fronts) >= 5)
        await asyncio.sleep(1.0)
        settled = len(focus_changes)
        await asyncio.sleep(1.0)
        assert fronts == ["fleet", "history", "queue", "metrics", "fleet"]
        assert len(focus_changes) == settled == 5
        assert isinstance(screen.focused, FleetGrid)


@pilot_test
async def test_the_current_tabs_number_keeps_the_focus_in_it():
    app = make_app(FakeService(hosts=50))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.query_one(QueueTable).row_count == 5)
        for key, widget in (("1", QueueTable), ("2", FleetGrid), ("2", FleetGrid), ("4", HistoryTable)):
            await pilot.press(key)
            await pilot.pause(0.05)
            assert isinstance(screen.focused, widget), (key, screen.focused)
        await pilot.press("2", "2", "f")  # f (next failed) still reaches the grid
        assert any("No failed hosts" in n.message for n in app._notifications)
        await pilot.press("3")
        assert screen.focused is screen.query_one("#graphs")


@pilot_test
async def test_closed_dialogs_leave_nothing_behind():
    """Each painted widget's StylesCache, with its rendered lines, used to stay in an
    lru_cache of Textual's after the widget was gone (textual#6665; console.tui.textual_fixes)."""
    from textual._styles_cache import StylesCache

    def alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, StylesCache))

    app = make_app(FakeService(hosts=50))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.query_one(QueueTable).row_count == 5)

        async def dialogs() -> None:
            for keys in (("1", "question_mark"), ("1", "k"), ("1", "d"), ("4", "enter"), ("2", "enter")):
                await pilot.press(*keys)
                await pilot.pause(0.2)
                await pilot.press("escape")
                await pilot.pause(0.1)

        await dialogs()
        before = alive()
        for _ in range(4):
            await dialogs()
        assert alive() <= before + 40  # the last dialog's widgets may linger (its worker's context)


async def history_in_front(pilot, screen) -> HistoryTable:
    """The History tab brought to the front, its table filled."""
    await pilot.press("4")
    table = screen.query_one(HistoryTable)
    await until(pilot, lambda: table.row_count > 0)
    return table


@pilot_test
async def test_ticking_ages_leave_no_dead_renders_behind():
    """Every age that changed moved the DataTable's cache key on, and what it rendered before
    used to stay, up to 10,000 cells per table: ten minutes of ticks on the History tab kept
    2,100 cells where 50 are shown (console.tui.textual_fixes.CachedTable.rewrite_cells)."""
    app = make_app(FakeService(hosts=20))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        table = await history_in_front(pilot, screen)
        await pilot.pause(0.1)
        kept = len(table._cell_render_cache)  # each visible cell, in the states it was shown in
        assert kept <= 3 * (table.row_count + 1) * len(table.columns)
        for _ in range(300):  # ten minutes: every age changes ten times
            app.clock.now += 2
            screen.tick()
            await pilot.pause(0)
        await pilot.pause(0.05)
        assert rendered(table)  # painted after every change
        assert len(table._cell_render_cache) <= kept


@pilot_test
async def test_an_age_that_changes_renders_only_its_own_row_again():
    """One age that changed made the table render every visible cell again: with 20 deploys
    whose ages change at different seconds, 220 cells every three seconds, most of the idle
    console's CPU on the History tab; and it emptied the table's cache of lines, so the next
    switch to History joined every visible line again (CachedTable.rewrite_cells)."""
    app = make_app(FakeService(hosts=20))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        table = await history_in_front(pilot, screen)
        await pilot.pause(0.1)
        renders: list[int] = []
        original = table._get_row_renderables
        table._get_row_renderables = lambda row: renders.append(row) or original(row)  # a row rendered from its data
        lines: list[str] = []  # the rows whose line was joined again (the rest came from the line cache)
        joined = table._render_line_in_row
        table._render_line_in_row = lambda row, *a, **kw: lines.append(row.value) or joined(row, *a, **kw)

        def ages() -> list[str]:
            return [str(table.get_cell(key, "when")) for key in table.records]  # in row order

        for _ in range(120):  # 10 s at a time until some ages change, not all
            before = ages()
            app.clock.now += 10
            screen.tick()
            await pilot.pause(0.05)
            changed = {row for row, (a, b) in enumerate(zip(before, ages(), strict=True)) if a != b}
            if changed:
                break
        assert changed and len(changed) < table.row_count, (before, ages())
        assert set(renders) == changed
        keys = list(table.records)  # in row order
        assert set(lines) == {keys[row] for row in changed}
        lines.clear()
        await pilot.press("1", "4")  # every line drawn again: each comes from the line cache
        await pilot.pause(0.05)
        assert rendered(table) and lines == []
        strips = table.render_lines(Region(0, 0, table.size.width, table.size.height))
        shown = [strips[table.header_height + row].text.split()[1] for row in range(table.row_count)]  # id, when, ...
        assert shown == ages()


@pilot_test
async def test_a_table_brought_back_to_the_front_renders_no_cell_again_and_still_shows_its_focus():
    """Gaining the focus and being shown again each made a DataTable render every visible cell
    afresh: 13 ms of a 40 ms switch to History (console.tui.textual_fixes.CachedTable)."""
    app = make_app(FakeService(hosts=20))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        table = await history_in_front(pilot, screen)
        await pilot.pause(0.1)
        renders = []
        original = table._get_row_renderables
        table._get_row_renderables = lambda row: renders.append(row) or original(row)  # a cell rendered from its data
        for key in ("1", "4", "2", "4", "1", "4"):
            await pilot.press(key)
            await pilot.pause(0.05)
        assert screen.focused is table and renders == []

        def cursor_line() -> list:
            lines = table.render_lines(Region(0, 0, table.size.width, table.size.height))
            return list(lines[table.header_height + table.cursor_row])

        focused = cursor_line()
        screen.set_focus(None)
        await pilot.pause(0.05)
        assert cursor_line() != focused  # the cursor shows the table has lost the focus
        screen.set_focus(table)
        await pilot.pause(0.05)
        assert cursor_line() == focused
        table.update_cell_at((0, 0), "changed")
        await pilot.pause(0.05)
        assert renders  # a real change is rendered


@pilot_test
async def test_a_tab_switch_draws_the_screen_and_its_tabs_no_line_again():
    """The screen, the tabbed content and its switcher draw only a background, yet each tab
    switch drew their every line again and composed the whole screen (their reactives
    `focused`, `active`, `current` repainted them; console.tui.textual_fixes)."""
    from textual.widgets import ContentSwitcher, TabbedContent

    app = make_app(FakeService(hosts=20))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        await history_in_front(pilot, screen)
        await pilot.press("1")
        await pilot.pause(0.1)
        containers = (screen, screen.query_one(TabbedContent), screen.query_one(ContentSwitcher))
        drawn = [dict(c._styles_cache._cache) for c in containers]
        assert all(drawn)
        for key in ("2", "4", "3", "1"):
            await pilot.press(key)
            await pilot.pause(0.05)
            for container, lines in zip(containers, drawn, strict=True):
                kept = container._styles_cache._cache
                assert all(kept.get(y) is strip for y, strip in lines.items()), (key, container)
