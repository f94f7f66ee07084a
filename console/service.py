"""What a console can ask of the engine, in one place, with no UI in it.

The Textual app holds one `EngineService` and calls it from worker threads: the queue,
a preview of a deploy, starting a deploy as its own process, following any running
deploy through its event log, history, the lock, metric series and deploy markers.
Keeping this Textual-free means every console feature is testable without a screen, and
the TUI stays a renderer of what the engine says.

The console may import only this module of the engine's upper layers (besides
`console.core` and `console.config`), so the records its calls return are re-exported
here (`__all__`): the console and its test fake use these very classes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from console.config.inventory import Inventory, KeyMetric, load_inventory
from console.core.events import Event, WatchVerdict
from console.metrics.backends import source_for
from console.pipeline.plan import DeployRequest
from console.session.detach import start_detached
from console.session.hold import Session, current_user
from console.session.runs import ensure_statsd
from console.state.history import DeployRecord, HostRecord
from console.state.lock import LockInfo
from console.trunk.checkout import Checkout
from console.trunk.ddl import DdlHit
from console.trunk.queue import Change, included, pending_changes, refusals

__all__ = [
    "Change",
    "DdlHit",
    "DeployRecord",
    "EngineService",
    "HostRecord",
    "KeyMetric",
    "LockInfo",
    "Preview",
    "open_service",
]

#: A console refreshes its queue often; trunk is fetched at most this often.
FETCH_EVERY = 10.0


@dataclass(frozen=True)
class Preview:
    """What the confirmation shows before a deploy: the commits, the fleet, the refusals."""

    target: Change
    commits: list[Change]
    refusals: list[str]
    hosts: int
    chunks: int
    chunk_size: int
    strategy: str
    rolling: bool
    allowed_failures: int


class EngineService:
    """The engine as one console sees it (one inventory, one user)."""

    def __init__(self, inventory: Inventory, user: str | None = None) -> None:
        self.inventory = inventory
        self.user = user or current_user()
        self.session = Session(inventory)
        self.checkout = Checkout(inventory)
        self._fetched = 0.0
        self._fetch_lock = threading.Lock()
        ensure_statsd(inventory)

    @property
    def environment(self) -> str:
        return self.inventory.environment

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.inventory.hosts)

    @property
    def key_metrics(self) -> tuple[KeyMetric, ...]:
        return self.inventory.metrics.key

    def live_revision(self) -> str | None:
        return self.session.history.live_revision(environment=self.environment)

    def queue(self) -> list[Change]:
        with self._fetch_lock:
            if time.monotonic() - self._fetched > FETCH_EVERY:
                self.checkout.update()
                self._fetched = time.monotonic()
        inv = self.inventory
        return pending_changes(
            self.checkout.path,
            self.live_revision(),
            self.checkout.tip(),
            trailer=inv.review_trailer,
            ddl_paths=inv.ddl_paths,
        )

    def preview(self, sha: str, rolling: bool = False) -> Preview:
        changes = included(self.queue(), sha)
        inv = self.inventory
        n = len(inv.hosts)
        return Preview(
            target=changes[-1],
            commits=changes,
            refusals=[f"{r.short} {r.subject}: {r.reason}" for r in refusals(changes)],
            hosts=n,
            chunks=-(-n // inv.chunk_size),
            chunk_size=inv.chunk_size,
            strategy=inv.strategy,
            rolling=rolling,
            allowed_failures=inv.allowed_failures(n),
        )

    def start_deploy(self, sha: str, override: str | None = None, rolling: bool = False) -> str:
        request = DeployRequest(user=self.user, ref=sha, override=override or None, rolling=rolling)
        deploy_id = start_detached(self.inventory, request)
        self._fetched = 0.0  # the queue changes once it lands
        return deploy_id

    def running_deploy(self) -> str | None:
        latest = self.session.log.latest()
        return latest if latest and self.session.log.running(latest) else None

    def latest_deploy(self) -> str | None:
        return self.session.log.latest()

    def follow(self, deploy_id: str, stop: threading.Event) -> Iterator[Event]:
        return self.session.log.follow(deploy_id, stop=stop)

    def events(self, deploy_id: str) -> list[Event]:
        return self.session.log.read(deploy_id)

    def history(self, limit: int = 50) -> list[DeployRecord]:
        return self.session.history.deploys(limit, environment=self.environment)

    def deploy(self, deploy_id: str) -> DeployRecord:
        return self.session.history.get(deploy_id)

    def lock_status(self) -> LockInfo | None:
        return self.session.lock.status()

    def take_lock(self, reason: str) -> None:
        self.session.lock.acquire(self.user, reason)

    def release_lock(self) -> None:
        self.session.lock.release(self.user)

    def metric_series(
        self, metric: KeyMetric, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]]:
        return list(source_for(self.inventory, metric).series(metric, start, end, step))

    def markers(self, since: float) -> list[tuple[float, str]]:
        return self.session.history.markers(since, environment=self.environment)

    def verdicts(self, deploy_id: str) -> list[WatchVerdict]:
        return self.session.history.verdicts(deploy_id)


def open_service(inventory_path: str | Path) -> EngineService:
    """The service for an inventory file (a ConsoleError names any mistake in it)."""
    return EngineService(load_inventory(inventory_path))
