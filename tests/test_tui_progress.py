"""Progress you can trust (issue 13, item 4): the time ticks, chunk i of n, the time left by
this environment's past deploys, a finished deploy reads finished, a reopened console shows
the last deploy, and closing the console mid-deploy says the deploy goes on."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.coordinate import Coordinate

from console.cli import left_running
from console.core.events import PHASES, DeployDone, PhaseStarted
from console.core.progress import DeployView, HostView, PhaseView
from console.tui.deploy_status import Timing, current_chunk
from console.tui.widgets.fleet_grid import FleetGrid
from console.tui.widgets.fleet_legend import FleetLegend
from console.tui.widgets.history_table import HistoryTable
from console.tui.widgets.queue_table import QueueTable
from console.tui.widgets.status_header import StatusHeader
from support.pilot import pilot_test, rendered, until
from support.tui_fixtures import NOW, FakeService, cut_at, grace_running, make_app, script_deploy

pytestmark = pytest.mark.timeout(60)


def line(app) -> str:
    return rendered(app.console_screen.query_one("#deploy-line"))


def test_the_timing_is_the_median_of_past_deploys_and_counts_down_by_phase():
    service = FakeService(hosts=10)
    timing = Timing.of(service.history())
    assert timing is not None and timing.deploys == 2  # d-0041 and d-0040; the switch and the failed one not
    assert timing.phases["sync-assets"] == 23  # median of 28 and 18
    phases = {p: PhaseView(p, state="done" if i < 3 else "pending") for i, p in enumerate(PHASES)}
    phases["sync-code"] = PhaseView("sync-code", state="running", hosts=10)
    left = timing.remaining(phases, {"sync-code": 5})
    assert left == pytest.approx(17 * 0.5 + 9 + 12.5 + 5 + 3)  # half of sync-code, then the rest
    assert Timing.of([]) is None


def test_the_current_chunk_is_the_first_with_a_host_not_through_the_phase():
    chunks = (("a", "b"), ("c", "d"), ("e",))
    hosts = {n: HostView(n, seconds={"sync-code": 1.0}) for n in "abc"}
    hosts["d"] = HostView("d", state="failed", phase="sync-code")
    assert current_chunk(chunks, hosts, "sync-code") == 3
    assert current_chunk(chunks, hosts, "activate") == 1
    assert current_chunk(chunks, hosts, "build") == 0  # a local phase has no chunks


@pilot_test
async def test_the_deploy_line_ticks_every_second_with_its_chunk_and_time_left():
    service = FakeService(hosts=200)
    grace_running(service)
    app = make_app(service)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.events == len(service.streams["d-0099"]))
        await until(pilot, lambda: "left" in line(app))
        before = line(app)
        assert "running activate · chunk 8 of 20" in before, before
        assert "30.0s" in before and "(by 2 past deploys)" in before
        app.clock.now = NOW + 5  # no event for five seconds: the time goes on anyway
        await until(pilot, lambda: "35.0s" in line(app), timeout=3)
        header = rendered(screen.query_one(StatusHeader))
        assert "d-0099 running activate · chunk 8 of 20 · 35.0s" in header and "left" in header
        app.clock.now = NOW + 600  # far past what the past deploys took
        await until(pilot, lambda: "longer than usual" in line(app), timeout=3)


@pilot_test
async def test_a_deploy_that_switched_no_host_reads_finished_everywhere():
    service = FakeService(hosts=40)
    failures = {f"web0{n:02d}": ("sync-assets", "ssh: connect to host: Connection refused") for n in range(1, 6)}
    events = script_deploy("d-0100", service.host_names, "feedbeef" * 5, failures=failures, t0=NOW - 30)
    staged = events[: next(i for i, e in enumerate(events) if isinstance(e, PhaseStarted) and e.phase == "activate")]
    message = "no host was switched: 5 hosts failed in sync-assets (2 allowed)"
    done = DeployDone("d-0100", result="failed", seconds=9.0, hosts_failed=tuple(failures.items()), message=message)
    service.streams["d-0100"] = [*staged, done]
    service.running = "d-0100"
    app = make_app(service)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.done_seen)
        header = rendered(screen.query_one(StatusHeader))
        assert "d-0100 failed in 9.0s: no host was switched" in header
        assert "running" not in header and "staged" not in header and "in progress" not in header
        assert "✗ 5 failed" in header and "○ 35 unchanged" in header
        assert "failed in 9.0s: no host was switched" in line(app)
        assert screen.query_one(FleetLegend).counts == {"failed": 5, "unchanged": 35}
        grid = screen.query_one(FleetGrid)
        assert {grid.state_of(h) for h in service.host_names} == {"failed", "unchanged"}


def test_a_host_the_deploy_did_not_switch_is_unchanged_and_a_step_runs_hosts_stay_staged():
    hosts = ("web001", "web002")
    events = script_deploy("d-1", hosts, "ab" * 20)
    staged = events[: next(i for i, e in enumerate(events) if isinstance(e, PhaseStarted) and e.phase == "activate")]
    failed = DeployView.of([*staged, DeployDone("d-1", result="failed", seconds=1.0)])
    assert {h.state for h in failed.hosts.values()} == {"unchanged"}
    step = DeployView.of([*staged, DeployDone("d-1", result="ok", seconds=1.0, hosts_ok=hosts)])
    assert {h.state for h in step.hosts.values()} == {"staged"}  # `invoke sync-code`: staged is the truth


@pilot_test
async def test_a_reopened_console_shows_the_last_deploy():
    service = FakeService(hosts=30)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.done_seen)
        assert screen.query_one(FleetLegend).counts == {"verified": 30}
        assert "d-0041 deploy 0badc0d by grace, 2 commits" in line(app) and "ok in" in line(app)
        assert "No deploy yet" not in line(app)
        await pilot.pause(0.2)
        assert not any("d-0041" in n.message for n in app._notifications)  # it ended long ago: no "just finished"


@pilot_test
async def test_quitting_mid_deploy_leaves_it_running_and_says_how_to_see_it_again():
    service = FakeService(hosts=20)
    deploy_id = grace_running(service)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.console_screen.events == len(service.streams[deploy_id]))
        await pilot.press("q")
    assert service.running_deploy() == deploy_id and service.aborted == []  # what deploy-console then says
    said = left_running(deploy_id, Path("hosts/production.yaml"))
    assert said.startswith("d-0099 goes on") and "invoke status --follow -i hosts/production.yaml" in said
    assert "deploy-console -i hosts/production.yaml" in said


@pilot_test
async def test_ages_stay_fresh_without_a_refresh():
    """The queue's and the history's ages and the header's "ago" move with the clock, not
    only when the lists are loaded again (`r`); a hidden table's ages, once its tab is in
    front (rewritten while hidden, its first frame rendered every cell again)."""
    service = FakeService(hosts=10)
    app = make_app(service)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.console_screen
        queue, history = screen.query_one(QueueTable), screen.query_one(HistoryTable)
        await until(pilot, lambda: queue.row_count == 5 and history.row_count == 4 and screen.done_seen)
        await app.workers.wait_for_complete()  # the lists loaded again once the deploy shown was done
        await pilot.pause(0.05)
        assert queue.get_cell_at(Coordinate(0, 5)) == "5m" and history.get_cell_at(Coordinate(0, 1)) == "10m"
        app.clock.now = NOW + 60 * 60
        await until(pilot, lambda: queue.get_cell_at(Coordinate(0, 5)) == "1h", timeout=3)
        assert "deployed by grace 1h ago" in rendered(screen.query_one(StatusHeader))
        assert history.get_cell_at(Coordinate(0, 1)) == "10m"
        await pilot.press("4")
        await until(pilot, lambda: history.get_cell_at(Coordinate(0, 1)) == "1h", timeout=0.5)


@pilot_test
async def test_a_switch_takes_its_time_left_from_past_switches_only():
    service = FakeService(hosts=40)
    events = script_deploy(
        "d-0101",
        service.host_names,
        "0badc0de" * 5,
        action="switch",
        commits=0,
        t0=NOW - 5,
        phases=("activate", "restart", "verify"),
    )
    service.streams["d-0101"] = cut_at(events, 0.5)
    service.live["d-0101"] = True
    service.running = "d-0101"
    assert Timing.of(service.history(), "switch") is None  # the fake's one switch has no phase times
    app = make_app(service)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: app.console_screen.events == len(service.streams["d-0101"]))
        await until(pilot, lambda: "running restart" in line(app))
        await pilot.pause(0.3)
        assert "left" not in line(app)  # not a deploy's time: there is none to go by
