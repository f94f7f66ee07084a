"""The console on the real engine service against the lab (issue 13, item 5): what the
other console tests check on the fake service holds on the real one, typed with the same
records. The queue is `invoke queue`'s; a deploy chosen and confirmed in the console runs
detached, reaches every host and ends ok in the grid; History lists its record."""

from __future__ import annotations

import pytest
from test_tui import plan_shown
from textual.widgets import TabbedContent

from console.service import open_service
from console.tui.app import ConsoleApp
from console.tui.widgets.fleet_legend import FleetLegend
from console.tui.widgets.history_table import HistoryTable
from console.tui.widgets.queue_table import QueueTable
from support.demo_fleet import make_demo_fleet
from support.pilot import pilot_test, until

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]


@pytest.fixture
def fleet(tmp_path):
    fleet = make_demo_fleet(tmp_path, 4)
    yield fleet
    fleet.close()


@pilot_test
async def test_the_console_on_the_real_service_deploys_to_the_lab(fleet):
    first = fleet.deploy(fleet.trunk.initial, override="first install of the demo shop")
    assert first.result == "ok", first.message
    service = open_service(fleet.inventory.path)
    queue = service.queue()
    app = ConsoleApp(service)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        table = screen.query_one(QueueTable)
        await until(pilot, lambda: table.row_count == len(queue), timeout=30)
        shown = [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]
        assert shown == [c.sha for c in reversed(queue)]  # newest on top, as `invoke queue` lists it
        chosen = table.newest_deployable()
        assert chosen is not None and table.current == chosen

        await pilot.press("d")
        await plan_shown(pilot)
        await pilot.press("enter")
        # the console opened on the first install's grid (the last deploy); then on this one
        await until(pilot, lambda: screen.feed is not None and screen.feed.deploy_id != first.deploy_id, timeout=30)
        await until(pilot, lambda: screen.done_seen, timeout=120)
        assert screen.query_one(TabbedContent).active == "fleet"
        assert screen.query_one(FleetLegend).counts == {"verified": 4}
        assert "ok in" in screen.query_one("#deploy-line").render().plain

        record = service.history(1)[0]
        assert (record.revision, record.result) == (chosen.sha, "ok")
        await pilot.press("4")
        history = screen.query_one(HistoryTable)
        await until(pilot, lambda: record.id in [k.value for k in history.rows], timeout=30)
