"""Snapshot tests of the console's main screens at 120x40 and 200x60 (History at 80x24 too).

Deterministic data only: the fake service, a fixed clock, scripted event streams.
Regenerate with `pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import asyncio

import pytest

from console.tui.screens.confirm_action import ConfirmAction
from console.tui.screens.confirm_deploy import ConfirmDeploy
from console.tui.screens.deploy_detail import DeployDetailScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.host_detail import HostDetailScreen
from console.tui.screens.live_log import LiveLogScreen
from support.tui_fixtures import NOW, FakeService, make_app, running_service, script_deploy

SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((200, 60), id="200x60")]


async def until(pilot, condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await pilot.pause(0.05)


def queue_loaded(app) -> bool:
    screen = app.console_screen
    tables = screen.query("QueueTable, HistoryTable")
    return len(tables) == 2 and [t.row_count for t in tables] == [5, 4]


async def fleet_ready(pilot) -> None:
    app = pilot.app
    screen = app.console_screen
    await until(pilot, lambda: queue_loaded(app))
    await until(pilot, lambda: screen.events == len(app.service.streams["d-0042"]))
    await pilot.press("2")
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES)
def test_queue(snap_compare, size):
    async def ready(pilot):
        await until(pilot, lambda: queue_loaded(pilot.app))
        await pilot.pause(0.2)  # the cursor starts on the newest commit that can go out

    assert snap_compare(make_app(), run_before=ready, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_confirm_refused(snap_compare, size):
    async def ready(pilot):
        await until(pilot, lambda: queue_loaded(pilot.app))
        await pilot.press("up", "up", "d")  # the newest commit: DDL, and it ships an unreviewed one
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDeploy) and pilot.app.screen.preview)
        await pilot.pause(0.1)
        await pilot.press(*"dba approved")

    assert snap_compare(make_app(), run_before=ready, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_fleet_in_progress(snap_compare, size):
    assert snap_compare(make_app(running_service()), run_before=fleet_ready, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_failed_host_detail(snap_compare, size):
    async def ready(pilot):
        await fleet_ready(pilot)
        await pilot.press("f", "f", "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, HostDetailScreen))
        await pilot.pause(0.3)

    assert snap_compare(make_app(running_service()), run_before=ready, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_metrics(snap_compare, size):
    async def ready(pilot):
        await until(pilot, lambda: queue_loaded(pilot.app))
        await pilot.press("3")
        await pilot.pause(0.5)

    assert snap_compare(make_app(), run_before=ready, terminal_size=size)


@pytest.mark.parametrize("size", [pytest.param((80, 24), id="80x24"), *SIZES])
def test_history(snap_compare, size):
    """The History tab at the width there is: at 80 columns no deploy id, commit count or
    "from" commit, and no sideways scrolling."""

    async def ready(pilot):
        await until(pilot, lambda: queue_loaded(pilot.app))
        await pilot.press("4")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), run_before=ready, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_history_deploy(snap_compare, size):
    async def ready(pilot):
        await until(pilot, lambda: queue_loaded(pilot.app))
        await pilot.press("4", "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DeployDetailScreen))
        await until(pilot, lambda: pilot.app.screen.view.started is not None)
        await pilot.pause(0.2)

    assert snap_compare(make_app(), run_before=ready, terminal_size=size)


def output_service() -> FakeService:
    """20 hosts, a finished deploy whose steps logged their output; web004 failed its restart."""
    service = FakeService(hosts=20)
    failures = {"web004": ("restart", "restart exited 1: shop did not reload (port 8080 busy)")}
    service.streams["d-0060"] = script_deploy(
        "d-0060", service.host_names, "c0ffee00" * 5, failures=failures, output=True, t0=NOW - 60
    )
    service.running = "d-0060"
    return service


@pytest.mark.parametrize("size", SIZES)
def test_live_log(snap_compare, size):
    async def ready(pilot):
        await until(pilot, lambda: queue_loaded(pilot.app) and pilot.app.console_screen.done_seen)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(pilot.app.screen, LiveLogScreen) and pilot.app.screen.finished)
        await pilot.pause(0.3)

    assert snap_compare(make_app(output_service()), run_before=ready, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_switch_confirm(snap_compare, size):
    async def ready(pilot):
        await until(pilot, lambda: queue_loaded(pilot.app))
        await pilot.press("4", "down", "s")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmAction) and pilot.app.screen.proposal)
        await pilot.pause(0.2)

    assert snap_compare(make_app(), run_before=ready, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, size):
    async def ready(pilot):
        await until(pilot, lambda: queue_loaded(pilot.app))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause(0.2)

    assert snap_compare(make_app(), run_before=ready, terminal_size=size)
