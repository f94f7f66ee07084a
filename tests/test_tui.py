"""Pilot tests of the console's flows, on the deterministic fake service."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.color import Color
from textual.geometry import Region
from textual.widgets import RichLog, Static, TabbedContent

from console.core.errors import ConsoleError
from console.core.progress import HOST_STATES
from console.tui.feed import DeployFeed
from console.tui.screens.confirm_deploy import ConfirmDeploy
from console.tui.screens.deploy_detail import DeployDetailScreen
from console.tui.screens.host_detail import HostDetailScreen
from console.tui.screens.lock import LockScreen
from console.tui.theme import DEFAULT_PALETTE, TEXTUAL_VARIABLES, THEME, palette
from console.tui.widgets.commit_detail import CommitDetail
from console.tui.widgets.fleet_grid import FleetGrid
from console.tui.widgets.fleet_legend import FleetLegend
from console.tui.widgets.host_card import HostCard
from console.tui.widgets.status_header import StatusHeader
from console.tui.workers import failure_line
from support.pilot import pilot_test, plan_shown, rendered, until
from support.tui_fixtures import (
    NOW,
    FakeService,
    LockInfo,
    grace_running,
    make_app,
    sample_queue,
    script_deploy,
)

pytestmark = pytest.mark.timeout(60)


@pilot_test
async def test_choose_commit_confirm_and_grid_reaches_all_verified():
    service = FakeService(hosts=120)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.query_one("QueueTable").row_count == 5)
        # newest on top; the cursor starts on the newest commit that can go out as it is
        # (the two above it are unreviewed or DDL)
        await until(pilot, lambda: "Faster sprite sheet" in rendered(screen.query_one(CommitDetail)))
        assert screen.query_one("QueueTable").cursor_row == 2
        detail = rendered(screen.query_one(CommitDetail))
        assert "Faster sprite sheet" in detail and "ships 3 commits" in detail
        await pilot.press("d")
        await plan_shown(pilot)
        assert "3 commits to 120 hosts in 12 chunks of 10" in app.screen.query_one("#plan").render().plain
        await pilot.press("enter")
        await until(pilot, lambda: screen.done_seen)
        assert service.started == [(sample_queue()[2].sha, None)]
        assert screen.query_one(TabbedContent).active == "fleet"
        assert screen.query_one(FleetLegend).counts == {"verified": 120}
        grid = screen.query_one(FleetGrid)
        assert {grid.state_of(h) for h in service.host_names} == {"verified"}
        assert "ok in" in screen.query_one("#deploy-line").render().plain
        # far fewer UI repaints than events: the feed coalesces
        assert screen.batches < screen.events / 10


@pilot_test
async def test_number_keys_switch_tabs_while_the_fleet_grid_has_the_focus():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        tabs = screen.query_one(TabbedContent)
        await until(pilot, lambda: screen.query_one("QueueTable").row_count == 5)
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.focused, FleetGrid))
        for key, tab in (("3", "metrics"), ("2", "fleet"), ("4", "history"), ("2", "fleet"), ("1", "queue")):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert tabs.active == tab, (key, tabs.active)


@pilot_test
async def test_deploy_button_opens_the_confirmation_and_escape_cancels():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.console_screen.query_one("QueueTable").row_count == 5)
        await pilot.click("#deploy")
        await plan_shown(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmDeploy))
        assert service.started == []


@pilot_test
async def test_the_confirmation_shows_which_hosts_feed_which_with_strategy_tree():
    service = FakeService(hosts=20)
    service.strategy = "tree"
    service.host_names = ("web[b]001", *service.host_names[1:])  # host names are text, never markup
    service.failed_last = ("web003", "web008", "web013")
    app = make_app(service)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: app.console_screen.query_one("QueueTable").row_count == 5)
        await pilot.press("d")
        await plan_shown(pilot)
        tree = app.screen.query_one("#tree", Static)
        preview = service.preview(sample_queue()[2].sha)
        assert preview.tree[0].startswith("tree: 2 stripes of 5 levels") and len(preview.tree) == 3
        assert preview.tree[1].startswith("stripe 1: push host → web[b]001; web[b]001 → web003, web005;")
        shown = [strip.text for strip in tree.render_lines(Region(0, 0, tree.size.width, tree.size.height))]
        assert tree.size.width < len(preview.tree[1])  # each line is cut at the dialog's edge, not wrapped
        assert [line.rstrip() for line in shown] == [line[: tree.size.width - 1] + "…" for line in preview.tree]
        await pilot.click("#only-failed")  # the tree of the hosts that deploy would go to
        await pilot.pause(0.1)
        assert tree.render().plain.splitlines() == list(preview.tree_failed)
        assert preview.tree_failed[1] == "stripe 1: push host → web003; web003 → web013, web008"


@pilot_test
async def test_refused_commit_shows_the_refusal_and_needs_an_override():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.query_one("QueueTable").row_count == 5)
        # the top commit is the DDL one, and the range includes the unreviewed one
        await pilot.press("up", "up")
        await until(pilot, lambda: "Add gift wrap" in rendered(screen.query_one(CommitDetail)))
        detail = rendered(screen.query_one(CommitDetail))
        assert "DDL" in detail and "blocked: not reviewed" in detail
        await pilot.press("d")
        await plan_shown(pilot)
        dialog = app.screen
        refusals = dialog.query_one("#refusals").render().plain
        assert "not reviewed" in refusals and "DDL migrations/0002_add_gift_wrap.sql:1" in refusals
        await pilot.press("enter")  # an empty reason: the dialog stays open and says why
        await pilot.pause(0.1)
        assert app.screen is dialog and service.started == []
        assert dialog.has_class("-error") and "Say why" in rendered(dialog.query_one("#error"))
        await pilot.press(*"gift wrap DDL reviewed by dba")
        assert not dialog.has_class("-error")
        await pilot.press("enter")
        await until(pilot, lambda: screen.done_seen)
        assert service.started == [(sample_queue()[4].sha, "gift wrap DDL reviewed by dba")]
        assert "override: gift wrap" in screen.query_one("#deploy-line").render().plain


@pilot_test
async def test_engine_error_is_a_notification_not_a_traceback():
    service = FakeService(hosts=20)
    service.lock = LockInfo("grace", "hotfix in progress", NOW - 60)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.query_one("QueueTable").row_count == 5)
        assert "held by grace" in rendered(screen.query_one(StatusHeader))
        await pilot.press("down", "down", "d")
        await plan_shown(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: any("held by grace" in n.message for n in app._notifications))
        assert service.started == [] and app.is_running


@pilot_test
async def test_attach_to_a_running_deploy():
    service = FakeService(hosts=200)
    grace_running(service, 0.6)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.events == len(service.streams["d-0099"]))
        counts = screen.query_one(FleetLegend).counts
        assert sum(counts.values()) == 200
        assert counts.get("restarting", 0) > 0 and counts.get("switching", 0) > 0
        line = screen.query_one("#deploy-line").render().plain
        assert "d-0099" in line and "by grace" in line and "running" in line
        assert "d-0099" in rendered(screen.query_one(StatusHeader))


@pilot_test
async def test_attach_key_finds_a_deploy_started_later():
    service = FakeService(hosts=30)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await pilot.press("a")
        await until(pilot, lambda: any("No deploy is running" in n.message for n in app._notifications))
        service.streams["d-0100"] = script_deploy("d-0100", service.host_names, "abcdef12" * 5)
        service.running = "d-0100"
        await pilot.press("a")
        await until(pilot, lambda: screen.done_seen)
        assert screen.query_one(FleetLegend).counts == {"verified": 30}


@pilot_test
async def test_failed_host_shows_its_reason_in_the_detail():
    service = FakeService(hosts=40)
    service.failures = {"web007": ("sync-code", "rsync: connection reset by peer (host killed)")}
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.query_one("QueueTable").row_count == 5)
        await pilot.press("down", "down", "d")
        await plan_shown(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: screen.done_seen)
        assert screen.query_one(FleetLegend).counts == {"verified": 39, "failed": 1}
        assert "partial" in screen.query_one("#deploy-line").render().plain
        log_text = "\n".join(line.text for line in screen.query_one("#activity", RichLog).lines)
        assert "web007 failed in sync-code: rsync: connection reset" in log_text
        await pilot.press("f")  # jump to the next failed host
        assert screen.query_one(FleetGrid).current_host == "web007"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HostDetailScreen))
        card = rendered(app.screen.query_one(HostCard))
        assert "failed" in card and "rsync: connection reset by peer (host killed)" in card
        assert "exit 255" in card and "sync-assets  done" in card
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HostDetailScreen))


@pytest.mark.parametrize(("hosts", "cell"), [(300, 1), (40, len("■ web001  "))])
@pilot_test
async def test_click_on_a_host_cell_opens_its_detail(hosts, cell):
    """Dense cells (one character per host) and named ones (a fleet whose names fit)."""
    service = FakeService(hosts=hosts)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        grid = app.console_screen.query_one(FleetGrid)
        await pilot.click(FleetGrid, offset=(1 + 4 * cell, 0))  # padding 1, fifth cell
        await until(pilot, lambda: isinstance(app.screen, HostDetailScreen))
        assert app.screen.host == "web005" and grid.cursor == 4


@pilot_test
async def test_history_opens_a_deploy_with_its_hosts():
    service = FakeService(hosts=500)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: app.console_screen.query_one("HistoryTable").row_count == 4)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DeployDetailScreen))
        await until(pilot, lambda: app.screen.view.started is not None)
        assert app.screen.query_one(FleetLegend).counts == {"verified": 500}
        assert "x" not in app.screen.active_bindings  # it ended: nothing to abort, and no key says so


@pilot_test
async def test_take_and_release_the_lock():
    service = FakeService(hosts=10)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        header = app.console_screen.query_one(StatusHeader)
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, LockScreen) and app.screen.loaded)
        await pilot.press(*"db failover", "enter")
        await until(pilot, lambda: header.lock_info is not None)
        assert service.lock.reason == "db failover"
        assert "held by ada" in rendered(header) and "db failover" in rendered(header)
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, LockScreen) and app.screen.loaded)
        await pilot.click("#release")
        await until(pilot, lambda: header.lock_info is None)
        assert service.lock is None


def test_feed_coalesces_per_host():
    service = FakeService(hosts=50)
    events = script_deploy("d-1", service.host_names, "ab" * 20)
    feed = DeployFeed("d-1")
    for event in events[: len(events) // 2]:
        feed.fold(event)
    first = feed.take()
    assert first is not None and first.reset and len(first.hosts) == 50
    assert feed.take() is None  # nothing new
    for event in events[len(events) // 2 :]:
        feed.fold(event)
    second = feed.take()
    assert second is not None and not second.reset
    assert second.counts == {"verified": 50} and second.done is not None
    assert sum(second.counts.values()) == 50


def test_service_errors_are_console_errors():
    service = FakeService(hosts=5)
    with pytest.raises(ConsoleError):
        service.follow("nope", None).__next__()


@pilot_test
async def test_a_failed_call_is_one_line_on_every_screen_and_the_console_goes_on():
    service = FakeService(hosts=10)

    def broken(*args, **kwargs):
        raise OSError("database disk image is malformed\nsecond line")

    service.history = broken
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        expected = "OSError: database disk image is malformed"
        await until(pilot, lambda: any(n.message == expected for n in app._notifications))
        assert all("second line" not in n.message for n in app._notifications)
        # the deploy detail, a dialog of its own, reports a failure the same way
        service.history = FakeService(hosts=10).history
        service.events = broken
        await pilot.press("r", "4")
        await until(pilot, lambda: app.console_screen.query_one("HistoryTable").row_count == 4)
        app.clear_notifications()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DeployDetailScreen))
        await until(pilot, lambda: any(n.message == expected for n in app._notifications))
        assert app.is_running


def test_failure_line_is_one_printable_line():
    assert failure_line(ConsoleError("locked by grace since 10:02: hotfix")) == "locked by grace since 10:02: hotfix"
    assert failure_line(KeyError("web007")) == "KeyError: 'web007'"
    assert failure_line(RuntimeError()) == "RuntimeError"
    assert failure_line(ConsoleError("bad \x1b[2Jsubject\nnext")) == "bad \\x1b[2Jsubject"


@pilot_test
async def test_the_console_theme_declares_every_colour_the_code_uses():
    assert set(DEFAULT_PALETTE.hosts) == set(HOST_STATES)
    for name, value in THEME.variables.items():
        Color.parse(value)  # usable as $name in console.tcss
        assert name.startswith(("console-", "host-")) or name in TEXTUAL_VARIABLES, name
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.current_theme.name == "deploy-console"
        header = app.console_screen.query_one(StatusHeader)
        assert palette(header) == DEFAULT_PALETTE
        # code reads its colours from the theme: a theme that sets one recolours the grid
        app.register_theme(replace(THEME, name="red-hosts", variables={**THEME.variables, "host-verified": "#ff0000"}))
        app.theme = "red-hosts"
        await pilot.pause(0.1)
        assert palette(header).host("verified") == "#ff0000"
        assert palette(header).ok == DEFAULT_PALETTE.ok
