"""Pilot tests of the operator's actions (issue 13: items 2, 6's dialogs and 7), on the fake service.

Switch back (from History, from a deploy's detail, after a DEGRADED verdict), retry the
failed hosts, abort, the deploy options, the live log, the lock dialog, dialogs that keep
what is typed before they show, the help, the command palette, the screenshot.
"""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console
from textual.widgets import Button, Checkbox, Input, RichLog

from console.core.events import WatchVerdict
from console.tui.screens.commit import CommitScreen
from console.tui.screens.confirm_action import ConfirmAction
from console.tui.screens.confirm_deploy import ConfirmDeploy
from console.tui.screens.console import ConsoleScreen
from console.tui.screens.deploy_detail import DeployDetailScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.host_detail import HostDetailScreen
from console.tui.screens.live_log import LiveLogScreen
from console.tui.screens.lock import LockScreen
from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.widgets.fleet_legend import FleetLegend
from support.pilot import pilot_test, plan_ready, rendered, until
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


def notified(app, text: str) -> bool:
    return any(text in n.message for n in app._notifications)


async def queue_loaded(pilot) -> None:
    await until(pilot, lambda: pilot.app.console_screen.query_one("QueueTable").row_count == 5)


async def proposal_shown(pilot) -> ConfirmAction:
    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmAction) and pilot.app.screen.proposal is not None)
    await pilot.pause(0.05)
    return pilot.app.screen


def degraded_deploy(service: FakeService) -> None:
    """d-0050 deploys, then checkouts/min is degraded; the console attaches to it."""
    events = script_deploy("d-0050", service.host_names, "c0ffee00" * 5, t0=NOW - 100)
    events[-1] = WatchVerdict(
        "d-0050", metric="checkouts/min", verdict="degraded", summary="checkouts/min 41 → 28, -32%, limit -20%", ts=NOW
    )
    service.streams["d-0050"] = events
    service.running = "d-0050"


# -- dialogs: keys typed before they show, one at a time, what is typed is kept ------------------


@pilot_test
async def test_keys_typed_before_the_plan_shows_become_the_reason_and_reach_nothing_else():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        await pilot.press("up", "up")  # the DDL commit: refused, it needs a reason
        service.gate = threading.Event()  # the engine is slow to plan
        await pilot.press("d", *"dba ok, ran ax", "backspace", "enter")
        # one dialog; no key reached the main screen (d deploy, a attach, r refresh, enter)
        assert sum(isinstance(s, ConfirmDeploy) for s in app.screen_stack) == 1
        assert service.started == [] and not notified(app, "No deploy is running")
        service.gate.set()
        await until(pilot, lambda: bool(app.screen.query("#override")))
        await pilot.pause(0.05)
        reason = app.screen.query_one("#override", Input)
        assert reason.value == "dba ok, ran a" and app.focused is reason
        assert service.started == []  # the enter typed before the plan showed deployed nothing


@pilot_test
async def test_d_d_d_opens_one_confirmation():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        service.gate = threading.Event()
        await pilot.press("d", "d", "d")
        service.gate.set()
        await until(pilot, lambda: isinstance(app.screen, ConfirmDeploy) and app.screen.preview is not None)
        await pilot.press("d")
        await pilot.pause(0.1)
        assert sum(isinstance(s, ConfirmDeploy) for s in app.screen_stack) == 1


@pilot_test
async def test_a_locked_environment_keeps_the_dialog_open_with_the_typed_reason():
    service = FakeService(hosts=20)
    service.lock = LockInfo("grace", "hotfix in progress", NOW - 60)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        await pilot.press("up", "up", "d")
        await until(pilot, lambda: bool(app.screen.query("#override")))
        dialog = app.screen
        await pilot.press(*"gift wrap approved by the dba", "enter")
        await until(pilot, lambda: notified(app, "held by grace"))
        assert app.screen is dialog and service.started == []
        assert dialog.query_one("#override", Input).value == "gift wrap approved by the dba"
        await until(pilot, lambda: not dialog.query_one("#confirm", Button).disabled)
        service.lock = None  # grace is done
        await pilot.press("enter")
        await until(pilot, lambda: app.console_screen.done_seen)
        assert service.started == [(sample_queue()[4].sha, "gift wrap approved by the dba")]


@pilot_test
async def test_the_confirmation_offers_rolling_only_failed_and_a_dry_run():
    service = FakeService(hosts=30)
    service.failed_last = ("web003", "web017")
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        await pilot.press("d")
        await until(pilot, lambda: plan_ready(app))
        dialog = app.screen
        only = dialog.query_one("#only-failed", Checkbox)
        assert "Only the 2 failed hosts" in str(only.label)
        dialog.query_one("#rolling", Checkbox).value = True
        only.value = True
        await pilot.pause(0.1)
        plan = rendered(dialog.query_one("#plan"))
        assert "to 2 hosts in 1 chunk" in plan and "the failed ones: web003, web017" in plan and "(rolling)" in plan
        await pilot.click("#dry-run")
        await until(pilot, lambda: "dry run: deploy" in rendered(dialog.query_one("#dry-run-text")))
        assert "to 2 hosts, rolling" in rendered(dialog.query_one("#dry-run-text"))
        assert service.started == []  # a dry run changes nothing
        await pilot.click("#confirm")
        await until(pilot, lambda: app.console_screen.done_seen)
        assert service.options == [{"rolling": True, "only_failed": True}]
        assert app.console_screen.query_one(FleetLegend).counts == {"verified": 2}


@pilot_test
async def test_only_failed_is_disabled_when_no_host_failed():
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        await pilot.press("d")
        await until(pilot, lambda: plan_ready(app))
        assert app.screen.query_one("#only-failed", Checkbox).disabled


# -- switch back -------------------------------------------------------------------------------


@pilot_test
async def test_switch_back_from_a_history_row():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: app.console_screen.query_one("HistoryTable").row_count == 4)
        await pilot.press("down", "s")  # d-0040, the partial deploy before the live one
        dialog = await proposal_shown(pilot)
        release = service.records[1].release
        body = rendered(dialog.query_one("#proposal"))
        assert f"Switch every host to release {release}" in body and "in d-0040 (partial)" in body
        assert "live now: 0badc0d" in body and "Activates, restarts and verifies 20 hosts" in body
        await pilot.press("enter")
        await until(pilot, lambda: app.console_screen.done_seen)
        assert service.switched == [release]
        screen = app.console_screen
        assert screen.query_one("TabbedContent").active == "fleet"
        assert "switch" in rendered(screen.query_one("#deploy-line"))


@pilot_test
async def test_a_history_row_that_shipped_nothing_is_not_switched_to():
    service = FakeService(hosts=20)
    service.records[1].result = "failed"
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: app.console_screen.query_one("HistoryTable").row_count == 4)
        await pilot.press("down", "s")
        await until(pilot, lambda: notified(app, "d-0040 put no release on the hosts"))
        assert not isinstance(app.screen, ConfirmAction) and service.switched == []


@pilot_test
async def test_switch_to_this_release_from_the_deploy_detail():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: app.console_screen.query_one("HistoryTable").row_count == 4)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DeployDetailScreen) and app.screen.view.done is not None)
        release = app.screen.view.started.release
        await pilot.press("s")
        await proposal_shown(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: service.switched == [release])
        assert not any(isinstance(s, DeployDetailScreen) for s in app.screen_stack)


@pilot_test
async def test_a_degraded_verdict_offers_the_switch_back():
    service = FakeService(hosts=20)
    degraded_deploy(service)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: notified(app, "Press s to switch back"))
        offer = next(n for n in app._notifications if "Press s" in n.message)
        assert offer.severity == "error" and "checkouts/min 41 → 28, -32%" in offer.message
        await pilot.press("s")
        dialog = await proposal_shown(pilot)
        assert "in d-0040 (partial)" in rendered(dialog.query_one("#proposal"))  # the release before the live one
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmAction))
        assert service.switched == []
        assert sum("Press s" in n.message for n in app._notifications) == 1  # said once


# -- retry, abort -------------------------------------------------------------------------------


@pilot_test
async def test_retry_the_failed_hosts():
    service = FakeService(hosts=30)
    service.failed_last = ("web003", "web017")
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        await pilot.press("R")
        dialog = await proposal_shown(pilot)
        body = rendered(dialog.query_one("#proposal"))
        assert "Deploy 0badc0d again to the 2 hosts that failed" in body and "web003, web017" in body
        assert str(dialog.query_one("#confirm", Button).label) == "Retry 2 hosts"
        await pilot.press("enter")
        await until(pilot, lambda: app.console_screen.done_seen)
        assert service.calls[-1] == "retry_failed web003 web017"
        assert app.console_screen.query_one(FleetLegend).counts == {"verified": 2}


@pilot_test
async def test_retry_with_no_failed_host_says_so():
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        await pilot.press("R")
        await until(pilot, lambda: notified(app, "no host failed in the last deploy of production"))
        await until(pilot, lambda: not isinstance(app.screen, ConfirmAction))


@pilot_test
async def test_abort_a_running_deploy():
    service = FakeService(hosts=40)
    grace_running(service, 0.4)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.events == len(service.streams["d-0099"]))
        assert "x" in screen.active_bindings  # offered while it runs
        await pilot.press("x")
        dialog = await proposal_shown(pilot)
        assert "Abort d-0099 at its next safe point?" in rendered(dialog.query_one("#proposal"))
        await pilot.press("enter")
        await until(pilot, lambda: screen.done_seen)
        assert service.aborted == ["d-0099"]
        assert "aborted" in rendered(screen.query_one("#deploy-line"))
        await pilot.pause(0.1)
        assert "x" not in screen.active_bindings  # and gone from the footer once it ended


@pilot_test
async def test_abort_is_not_offered_with_nothing_running():
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        assert "x" not in app.console_screen.active_bindings
        await pilot.press("x")
        await pilot.pause(0.1)
        assert app.screen is app.console_screen


# -- the live log --------------------------------------------------------------------------------


def deploy_with_output(service: FakeService) -> None:
    failures = {"web004": ("restart", "restart exited 1")}
    service.streams["d-0060"] = script_deploy(
        "d-0060", service.host_names, "c0ffee00" * 5, failures=failures, output=True
    )
    service.running = "d-0060"


def log_text(screen: LiveLogScreen) -> str:
    return "\n".join(line.text for line in screen.query_one(RichLog).lines)


@pilot_test
async def test_the_live_log_of_a_deploy_and_of_one_host():
    service = FakeService(hosts=6)
    deploy_with_output(service)
    app = make_app(service)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.console_screen
        await until(pilot, lambda: screen.done_seen)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LiveLogScreen) and app.screen.finished)
        log = app.screen
        await until(pilot, lambda: "finished: partial" in rendered(log.query_one("#log-state")))
        text = log_text(log)
        assert "══ d-0060: deploy c0ffee0 by ada, 6 hosts in 1 chunks" in text
        assert "web002       restart     │ $ /srv/www/current/bin/ctl graceful" in text
        assert "web002       restart     │ web002: reloaded 4 workers (graceful)" in text
        assert "web004       restart     FAILED: restart exited 1 (exit 255)" in text
        assert any(line.startswith("══ partial in") for line in text.splitlines())  # a clear done state
        await pilot.press("escape")
        # one host's log, from its detail
        await pilot.press("2", "right", "enter")
        await until(pilot, lambda: isinstance(app.screen, HostDetailScreen))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LiveLogScreen) and app.screen.finished)
        await pilot.pause(0.3)
        text = log_text(app.screen)
        assert "restart     │ web002: reloaded" in text and "web003" not in text and "web001" not in text


@pilot_test
async def test_the_live_log_follows_a_running_deploy_and_says_when_it_ends():
    service = FakeService(hosts=4)
    events = script_deploy("d-0061", service.host_names, "c0ffee00" * 5, output=True)
    service.streams["d-0061"] = events[:5]
    service.live["d-0061"] = True
    service.running = "d-0061"
    app = make_app(service)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: app.console_screen.events == 5)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LiveLogScreen) and app.screen.written >= 3)
        log = app.screen
        assert "following" in rendered(log.query_one("#log-state"))
        service.streams["d-0061"] = events  # the rest arrives
        service.live["d-0061"] = False
        await until(pilot, lambda: "finished: ok" in rendered(log.query_one("#log-state")))
        assert "verify      │ ok revision c0ffee0" in log_text(log)


# -- the lock dialog -----------------------------------------------------------------------------


@pilot_test
async def test_the_lock_dialog_says_who_since_when_where_and_take_is_disabled_while_held():
    service = FakeService(hosts=10)
    service.lock = LockInfo("grace", "db failover", NOW - 300, pid=4242, hostname="deploy01", deploy_id="d-0042")
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, LockScreen) and app.screen.loaded)
        dialog = app.screen
        holder = rendered(dialog.query_one("#holder"))
        assert "Held by grace since " in holder and "(5m ago)" in holder
        assert "process 4242 on deploy01, deploy d-0042" in holder and "reason: db failover" in holder
        assert dialog.query_one("#take", Button).disabled
        assert not dialog.query_one("#release", Button).disabled


@pilot_test
async def test_an_empty_lock_reason_keeps_the_dialog_open_with_an_inline_error():
    service = FakeService(hosts=10)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, LockScreen) and app.screen.loaded)
        dialog = app.screen
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.screen is dialog and dialog.has_class("-error") and service.lock is None
        assert "Say why you take the lock" in rendered(dialog.query_one("#error"))


# -- discoverability -----------------------------------------------------------------------------


@pilot_test
async def test_help_lists_every_key_with_what_it_does():
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(140, 60)) as pilot:
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        out = Console(width=140, record=True, file=io.StringIO())
        out.print(app.screen.table())
        text = out.export_text()
        for binding in ConsoleScreen._merge_bindings().key_to_bindings.values():
            b = binding[0]
            if b.tooltip:  # every console key has one (Textual's own focus keys have none)
                assert b.description in text, b
                assert b.tooltip[:40] in text, b
        assert "Show the deploy running now, wherever it was started" in text  # Attach (a), explained
        for name in ("Next failed", "Host detail", "Commit detail", "Switch to this release", "Host's live log"):
            assert name in text, name


@pilot_test
async def test_the_command_palette_has_the_consoles_own_commands():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        titles = [c.title for c in app.get_system_commands(app.console_screen)]
        for title in ("Deploy (d)", "Switch back (s)", "Retry failed (R)", "Live log (l)", "Lock (k)", "Help (?)"):
            assert title in titles, titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"switch back")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await proposal_shown(pilot)  # the switch back confirmation


@pilot_test
async def test_a_dialog_shows_its_own_keys_in_its_footer():
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        await pilot.press("d")
        await until(pilot, lambda: plan_ready(app))
        dialog = app.screen
        assert "Cancel" in rendered(dialog.query_one(ConsoleFooter))
        shown = {b.binding.description for b in dialog.active_bindings.values() if b.binding.show}
        assert {"Cancel", "Next field"} <= shown and "Deploy" not in shown  # not the main screen's keys


def test_the_screenshot_is_saved(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/Downloads: the current directory
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)

    @pilot_test
    async def run() -> None:
        app = make_app(FakeService(hosts=10))
        async with app.run_test(size=(120, 40)) as pilot:
            app.action_screenshot()
            await until(pilot, lambda: notified(app, "Saved screenshot") or notified(app, "Failed"))
            assert not notified(app, "Failed to save screenshot")

    run()
    assert [p.suffix for p in tmp_path.iterdir() if p.is_file()] == [".svg"]


@pilot_test
async def test_enter_on_a_queue_row_opens_the_commit_and_d_deploys_it():
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_loaded(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, CommitScreen))
        text = rendered(app.screen.query_one("CommitDetail"))
        assert "Faster sprite sheet" in text and "assets/img/sprite.png, assets/css/header.css" in text
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDeploy))


@pilot_test
async def test_attach_with_nothing_running_explains_itself():
    app = make_app(FakeService(hosts=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await until(pilot, lambda: notified(app, "a attaches to one started anywhere"))
