"""What the console needs from the engine: the `ConsoleService` protocol.

The real service (`console.service.EngineService`) is Textual-free and blocking; the
console calls every method from a thread worker (`console.tui.workers.service_worker`),
never from the event loop. The protocol is typed with the engine's own records, which
`console.service` re-exports: the test fake (`tests/support/tui_fixtures.py`) and the
bench service (`console.tui.bench`) build those same classes, so a field the console reads
is a field the engine fills.

Every method may raise `console.core.errors.ConsoleError` with a one-line message; the
console shows that line as a notification.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from console.core.events import Event, WatchVerdict
from console.service import Change, DeployRecord, KeyMetric, LockInfo, Marker, Preview, Serving


class ConsoleService(Protocol):
    """One environment's deploy engine, as the console sees it. Every call blocks."""

    @property
    def environment(self) -> str:
        """The environment this console deploys to."""

    @property
    def host_names(self) -> tuple[str, ...]:
        """Every host of the inventory, in its order."""

    @property
    def key_metrics(self) -> tuple[KeyMetric, ...]:
        """The key metrics watched after a deploy."""

    @property
    def metrics_baseline(self) -> float:
        """Seconds of each key metric before a deploy that its watch compares against."""

    def live_revision(self) -> str | None:
        """The commit the fleet serves now, or None before the first deploy."""

    def serving(self) -> Serving | None:
        """The commit the fleet serves now with its subject and author, and who put it there
        when; None before the first deploy."""

    def queue(self) -> list[Change]:
        """Undeployed commits on trunk, oldest first."""

    def preview(self, sha: str) -> Preview:
        """The plan a deploy of `sha` would run, and what it would refuse."""

    def start_deploy(
        self, sha: str, override: str | None = None, *, rolling: bool = False, only_failed: bool = False
    ) -> str:
        """Start a detached deploy of `sha` (only to the hosts that failed last time, with
        `only_failed`); returns its deploy id."""

    def dry_run(
        self, sha: str, override: str | None = None, *, rolling: bool = False, only_failed: bool = False
    ) -> str:
        """The plan that deploy would run, as `invoke deploy --dry-run` prints it."""

    def failed_hosts(self) -> list[str]:
        """The hosts that failed in the last deploy with failures and have not caught up."""

    def retry_failed(self) -> str:
        """Deploy the live revision again to the hosts that failed; returns the deploy id."""

    def switch_target(self, release: str | None = None) -> DeployRecord:
        """The newest deploy that shipped `release` (default: the release before the live one)."""

    def start_switch(self, release: str) -> str:
        """Start a detached switch of every host to `release`; returns its deploy id."""

    def abort(self, deploy_id: str) -> None:
        """Ask a running deploy to stop at its next safe point."""

    def running_deploy(self) -> str | None:
        """The id of a deploy running now (started anywhere), or None."""

    def follow(self, deploy_id: str, stop: threading.Event) -> Iterator[Event]:
        """Every event of a deploy from its start, then live; ends after DeployDone or `stop`."""

    def events(self, deploy_id: str) -> list[Event]:
        """Every event a deploy has written so far."""

    def history(self, limit: int = 50) -> list[DeployRecord]:
        """Past deploys, newest first."""

    def lock_status(self) -> LockInfo | None:
        """Who holds the deploy lock and why, or None."""

    def take_lock(self, reason: str) -> None:
        """Take the deploy lock with a reason."""

    def release_lock(self) -> None:
        """Release the deploy lock."""

    def metric_series(
        self, metric: KeyMetric, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]]:
        """Samples of a key metric, one per `step` seconds."""

    def markers(self, since: float) -> list[Marker]:
        """One marker per deploy and switch since `since` (when it went live, and how it ended)."""

    def verdicts(self, deploy_id: str) -> list[WatchVerdict]:
        """The watch verdicts of a deploy, oldest first."""
