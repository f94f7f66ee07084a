"""The operator's actions on the main screen: deploy, switch back, retry the failed hosts,
abort, the live log, the lock, and the help.

`OperatorActions` is the base of `ConsoleScreen`: it declares these keys (each `Binding`'s
tooltip says what it does; the help screen and the command palette read them) and opens
their dialogs. Every dialog opens at once and asks the service itself, so keys typed while
it loads never fall through to the main screen, and an open dialog takes the next press of
its own key instead of stacking a second one. An action that starts a run (deploy, switch,
retry) posts `OperatorActions.Started`; the main screen then follows that run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import getters
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import TabbedContent

from console.core.errors import ConsoleError
from console.core.events import WatchVerdict
from console.core.text import printable, short
from console.service import LockInfo
from console.tui.feed import DeployFeed
from console.tui.format import ago
from console.tui.panes.history import HistoryPane
from console.tui.panes.queue import QueuePane
from console.tui.screens.confirm_action import ConfirmAction, Proposal
from console.tui.screens.confirm_deploy import ConfirmDeploy
from console.tui.screens.help import HelpScreen
from console.tui.screens.live_log import LiveLogScreen
from console.tui.screens.lock import LockRequest, LockScreen
from console.tui.widgets.history_table import HistoryTable
from console.tui.widgets.status_header import StatusHeader
from console.tui.workers import service_worker

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


class OperatorActions(Screen[None]):
    """The keys that change something or open a dialog (see the module doc)."""

    BINDINGS = [
        Binding(
            "d",
            "deploy",
            "Deploy",
            tooltip="Deploy the highlighted commit of the queue and every older one; shows the plan to confirm",
        ),
        Binding(
            "s",
            "switch",
            "Switch back",
            tooltip="Switch every host to the release before the live one (on History: the highlighted release)",
        ),
        Binding(
            "R", "retry", "Retry failed", tooltip="Deploy the live revision again to the hosts that failed last time"
        ),
        Binding("x", "abort", "Abort", tooltip="Stop the running deploy at its next safe point, between chunks"),
        Binding("l", "log", "Live log", tooltip="Every command and its output, live, for the deploy shown"),
        Binding("k", "lock", "Lock", tooltip="Take or release the deploy lock: while held, no deploy runs"),
        Binding("question_mark,f1", "help", "Help", tooltip="Every key with what it does"),
    ]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    # set by ConsoleScreen: the deploy shown, and whether its DeployDone was seen
    feed: DeployFeed | None
    done_seen: bool

    @dataclass
    class Started(Message):
        """A deploy, switch or retry started from this console: the screen follows it."""

        deploy_id: str

    # -- what the actions act on ------------------------------------------------------
    @property
    def running_shown(self) -> str | None:
        """The deploy shown, if it is still running."""
        feed = self.feed
        return feed.deploy_id if feed is not None and not feed.finished and not self.done_seen else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Abort is offered (and in the footer) only while the deploy shown runs."""
        if action == "abort":
            return self.running_shown is not None
        return True

    def _dialog_open(self, kind: type[Screen]) -> bool:
        return any(isinstance(screen, kind) for screen in self.app.screen_stack)

    # -- deploy -----------------------------------------------------------------------
    def action_deploy(self) -> None:
        change = self.query_one(QueuePane).current
        if change is None:
            self.notify("Nothing to deploy: the queue is empty.", severity="warning")
            return
        running = self.running_shown
        if running is not None:
            self.notify(f"{running} is still running.", severity="warning")
            return
        if not self._dialog_open(ConfirmDeploy):
            self.app.push_screen(ConfirmDeploy(change.sha), self._started)

    def _started(self, deploy_id: str | None) -> None:
        if deploy_id is not None:
            self.notify(f"{deploy_id} started")
            self.post_message(self.Started(deploy_id))

    # -- switch -----------------------------------------------------------------------
    def action_switch(self) -> None:
        """On History, the highlighted deploy's release; elsewhere the one before the live one."""
        release = None
        if self.query_one(TabbedContent).active == "history":
            record = self.query_one(HistoryPane).query_one(HistoryTable).current
            if record is not None:
                if not record.release or record.result not in ("ok", "partial"):
                    self.notify(f"{record.id} put no release on the hosts: nothing to switch to.", severity="warning")
                    return
                release = record.release
        self.switch_to(release)

    def switch_to(self, release: str | None) -> None:
        """Confirm, then switch every host to `release` (None: the one before the live one)."""
        if self._dialog_open(ConfirmAction):
            return
        service = self.app.service

        def proposal() -> Proposal[str]:
            target = service.switch_target(release)
            assert target.release is not None
            live = service.live_revision()
            body = Text()
            body.append("Switch every host to release ", style="bold")
            body.append(target.release, style="bold")
            body.append(f"\n  {short(target.revision, '-')}, deployed by {printable(target.user)} ")
            body.append(f"{ago(self.app.clock() - target.started)} ago in {target.id} ({target.result})")
            body.append(f"\n  live now: {short(live, 'nothing')}")
            body.append(
                f"\nActivates, restarts and verifies {len(service.host_names)} hosts; nothing is built or sent.",
                style="dim",
            )
            return Proposal(body, target.release, f"Switch to {short(target.revision, target.release)}")

        self.app.push_screen(ConfirmAction("switch", proposal), self._switch_confirmed)

    def _switch_confirmed(self, release: str | None) -> None:
        if release is not None:
            self._start_switch(release)

    @service_worker("switch")
    def _start_switch(self, release: str) -> None:
        deploy_id = self.app.service.start_switch(release)
        self.app.call_from_thread(self._started, deploy_id)

    def offer_switch_back(self, deploy_id: str, verdicts: dict[str, WatchVerdict], offered: set[str]) -> None:
        """After a DEGRADED verdict of the deploy shown, say once how to switch back."""
        degraded = [v for v in verdicts.values() if v.verdict == "degraded" and not v.dry_run]
        if degraded and deploy_id not in offered:
            offered.add(deploy_id)
            what = "; ".join(printable(v.summary) for v in degraded)
            self.notify(
                f"{what}. Press s to switch back to the release before {deploy_id}.",
                title="DEGRADED",
                severity="error",
                timeout=60,
                markup=False,
            )

    # -- retry, abort -------------------------------------------------------------------
    def action_retry(self) -> None:
        if self._dialog_open(ConfirmAction):
            return
        service = self.app.service

        def proposal() -> Proposal[bool]:
            failed = service.failed_hosts()
            live = service.live_revision()
            if not failed:
                raise ConsoleError(f"no host failed in the last deploy of {service.environment}: nothing to retry")
            body = Text()
            body.append(f"Deploy {short(live, 'nothing')} again to the {len(failed)} hosts that failed:", style="bold")
            body.append(f"\n  {', '.join(failed)}")
            body.append("\nThe other hosts are left as they are (invoke deploy --only failed).", style="dim")
            return Proposal(body, True, f"Retry {len(failed)} host{'s' if len(failed) != 1 else ''}")

        self.app.push_screen(ConfirmAction("retry failed hosts", proposal), self._retry_confirmed)

    def _retry_confirmed(self, retry: bool | None) -> None:
        if retry:
            self._retry()

    @service_worker("deploy")
    def _retry(self) -> None:
        deploy_id = self.app.service.retry_failed()
        self.app.call_from_thread(self._started, deploy_id)

    def action_abort(self) -> None:
        running = self.running_shown
        if running is not None:  # else the key is not offered (check_action)
            self.abort_deploy(running)

    def abort_deploy(self, deploy_id: str) -> None:
        """Confirm, then ask `deploy_id` to stop at its next safe point."""
        if self._dialog_open(ConfirmAction):
            return

        def proposal() -> Proposal[str]:
            body = Text()
            body.append(f"Abort {deploy_id} at its next safe point?", style="bold")
            body.append("\nIt stops between chunks, never between a host's staging and its switch.")
            body.append("\nHosts already switched stay switched; the others keep the live release.", style="dim")
            return Proposal(body, deploy_id, "Abort")

        self.app.push_screen(ConfirmAction("abort", proposal, variant="error"), self._abort_confirmed)

    def _abort_confirmed(self, deploy_id: str | None) -> None:
        if deploy_id is not None:
            self._abort(deploy_id)

    @service_worker("abort")
    def _abort(self, deploy_id: str) -> None:
        self.app.service.abort(deploy_id)
        self.app.call_from_thread(self.notify, f"{deploy_id}: asked to stop at the next safe point")

    # -- the live log, the lock, the help ---------------------------------------------------
    def action_log(self) -> None:
        if self.feed is None:
            self.notify("No deploy shown yet: deploy, or attach (a) to a running one.", severity="warning")
            return
        self.open_log(self.feed.deploy_id)

    def open_log(self, deploy_id: str, host: str | None = None) -> None:
        """The live log of `deploy_id` (all hosts, or `host`)."""
        if not self._dialog_open(LiveLogScreen):
            self.app.push_screen(LiveLogScreen(deploy_id, host))

    def action_lock(self) -> None:
        if not self._dialog_open(LockScreen):
            self.app.push_screen(LockScreen(), self._lock_chosen)

    def _lock_chosen(self, request: LockRequest | None) -> None:
        if request is not None:
            self._lock_change(request)

    @service_worker("lock")
    def _lock_change(self, request: LockRequest) -> None:
        service = self.app.service
        if request.action == "take":
            service.take_lock(request.reason)
            self.app.call_from_thread(self.notify, f"Lock taken: {request.reason}", markup=False)
        else:
            service.release_lock()
            self.app.call_from_thread(self.notify, "Lock released.")
        lock = service.lock_status()
        self.app.call_from_thread(self._show_lock, lock)

    def _show_lock(self, lock: LockInfo | None) -> None:
        header = self.query_one(StatusHeader)
        header.lock_info, header.now = lock, self.app.clock()

    def action_help(self) -> None:
        if not self._dialog_open(HelpScreen):
            self.app.push_screen(HelpScreen())
