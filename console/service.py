"""What a console can ask of the engine, in one place, with no UI in it.

The Textual app holds one `EngineService` and calls it from worker threads: the queue,
a preview (or the dry run) of a deploy, starting a deploy, a switch or a retry of the
failed hosts as its own process, aborting one at its next safe point, following any
running deploy through its event log (its live log too), history, the lock, metric series
and deploy markers.
Keeping this Textual-free means every console feature is testable without a screen, and
the TUI stays a renderer of what the engine says.

The console may import only this module of the engine's upper layers (besides
`console.core` and `console.config`), so the records its calls return are re-exported
here (`__all__`): the console and its test fake use these very classes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from console.config.inventory import Host, Inventory, KeyMetric, load_inventory
from console.core.errors import ConsoleError
from console.core.events import Event, WatchVerdict
from console.core.text import printable
from console.metrics.backends import source_for
from console.pipeline.dry_run import tree_lines
from console.pipeline.plan import DeployRequest
from console.session.abort import abort
from console.session.detach import start_detached, start_detached_switch
from console.session.hold import Session, current_user
from console.session.runs import ensure_statsd, only_hosts, previous_release
from console.state.history import DeployRecord, HostRecord, Marker
from console.state.lock import LockInfo
from console.trunk.checkout import Checkout
from console.trunk.ddl import DdlHit
from console.trunk.git import run_git
from console.trunk.queue import Change, Queue, included, position_refusal, queue_for, refusals

__all__ = [
    "Change",
    "DdlHit",
    "DeployRecord",
    "EngineService",
    "HostRecord",
    "KeyMetric",
    "LockInfo",
    "Marker",
    "Preview",
    "Serving",
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
    failed_hosts: tuple[str, ...] = ()
    """The hosts that failed last time and have not caught up: what "only failed" deploys to."""
    tree: tuple[str, ...] = ()
    """With `strategy: tree`, who feeds whom, as --dry-run says it (`dry_run.tree_lines`);
    empty otherwise. Host names in it are the inventory's, shown as text."""
    tree_failed: tuple[str, ...] = ()
    """The same over the failed hosts only."""


@dataclass(frozen=True)
class Serving:
    """What the fleet serves now: the commit, and the deploy or switch that put it there."""

    revision: str
    subject: str  # '' when the commit is not in the deploy host's checkout
    author: str
    deploy_id: str
    action: str  # deploy or switch
    deployed_by: str
    since: float  # when its first host was switched (else when it ended)


class EngineService:
    """The engine as one console sees it (one inventory, one user)."""

    def __init__(self, inventory: Inventory, user: str | None = None) -> None:
        self.inventory = inventory
        self.user = user or current_user()
        self.session = Session(inventory)
        self.checkout = Checkout(inventory)
        self._fetched = 0.0
        self._fetch_lock = threading.Lock()
        self._commits: dict[str, tuple[str, str]] = {}  # sha -> (subject, author), for serving()
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

    @property
    def metrics_baseline(self) -> float:
        return self.inventory.metrics.baseline

    def live_revision(self) -> str | None:
        return self.session.history.live_revision(environment=self.environment)

    def serving(self) -> Serving | None:
        record = self.session.history.live_deploy(environment=self.environment)
        if record is None or not record.revision:
            return None
        subject, author = self._commits.get(record.revision) or self._commit(record.revision)
        since = record.activated or record.ended or record.started
        return Serving(record.revision, subject, author, record.id, record.action, record.user, since)

    def _commit(self, sha: str) -> tuple[str, str]:
        """The subject and author of a commit of trunk, ('', '') if the checkout lacks it."""
        try:
            subject, _, author = (
                run_git(self.checkout.path, "log", "-1", "--format=%s%x00%an", sha).strip().partition("\0")
            )
        except ConsoleError:
            return "", ""
        self._commits[sha] = (subject, author)
        return subject, author

    def queue(self) -> list[Change]:
        with self._fetch_lock:
            if time.monotonic() - self._fetched > FETCH_EVERY:
                self.checkout.update()
                self._fetched = time.monotonic()
        return self._queue_for(self.checkout.tip()).changes

    def _queue_for(self, target: str) -> Queue:
        inv = self.inventory
        return queue_for(
            self.checkout.path, self.live_revision(), target, trailer=inv.review_trailer, ddl_paths=inv.ddl_paths
        )

    def preview(self, sha: str, rolling: bool = False) -> Preview:
        """The confirmation of a deploy of `sha`: its commits, the fleet, and every refusal
        (unreviewed or DDL commits, and live commits it would take off the fleet)."""
        changes = included(self.queue(), sha)
        inv = self.inventory
        n = len(inv.hosts)
        failed = self.failed_hosts()
        by_name = {h.name: h for h in inv.hosts}
        position = position_refusal(self._queue_for(changes[-1].sha), on_branch=True, branch=inv.branch)
        return Preview(
            target=changes[-1],
            commits=changes,
            refusals=position.splitlines()
            + [f"{r.short} {printable(r.subject, 72)}: {r.reason}" for r in refusals(changes)],
            hosts=n,
            chunks=-(-n // inv.chunk_size),
            chunk_size=inv.chunk_size,
            strategy=inv.strategy,
            rolling=rolling,
            allowed_failures=inv.allowed_failures(n),
            failed_hosts=tuple(failed),
            tree=self._tree(inv.hosts),
            tree_failed=self._tree([by_name[f] for f in failed if f in by_name]),  # in --only failed's order
        )

    def _tree(self, hosts: Sequence[Host]) -> tuple[str, ...]:
        """Who feeds whom over `hosts`, with `strategy: tree`."""
        inv = self.inventory
        return tuple(tree_lines(hosts, inv.tree_port)) if inv.strategy == "tree" else ()

    def _request(self, sha: str, override: str | None, rolling: bool, only_failed: bool) -> DeployRequest:
        hosts = only_hosts(self.inventory, self.session.history, "failed" if only_failed else None)
        return DeployRequest(user=self.user, ref=sha, override=override or None, hosts=hosts, rolling=rolling)

    def start_deploy(
        self, sha: str, override: str | None = None, *, rolling: bool = False, only_failed: bool = False
    ) -> str:
        deploy_id = start_detached(self.inventory, self._request(sha, override, rolling, only_failed))
        self._fetched = 0.0  # the queue changes once it lands
        return deploy_id

    def dry_run(
        self, sha: str, override: str | None = None, *, rolling: bool = False, only_failed: bool = False
    ) -> str:
        """The plan a deploy would run, as `invoke deploy --dry-run` prints it; changes nothing."""
        pipeline = self.session.pipeline()
        return pipeline.describe(pipeline.plan(self._request(sha, override, rolling, only_failed)))

    def failed_hosts(self) -> list[str]:
        return self.session.history.failed_hosts_of_last(environment=self.environment)

    def retry_failed(self) -> str:
        """Deploy the live revision again to the hosts that failed and have not caught up
        (`invoke deploy --only failed --ref LIVE`); returns the deploy id."""
        live = self.live_revision()
        if live is None:
            raise ConsoleError(f"nothing is live on {self.environment} yet: deploy first")
        return self.start_deploy(live, only_failed=True)

    def switch_target(self, release: str | None = None) -> DeployRecord:
        """The newest deploy that shipped `release` (default: the release before the live one)."""
        release = release or previous_release(self.session.history)
        for record in self.session.history.deploys(200, environment=self.environment):
            if record.release == release and record.result in ("ok", "partial"):
                return record
        raise ConsoleError(f"release {release} never went out to {self.environment}: nothing to switch to")

    def start_switch(self, release: str) -> str:
        """Switch every host to `release` (activate, restart, verify) as its own process."""
        return start_detached_switch(self.inventory, release, self.user)

    def abort(self, deploy_id: str) -> None:
        """Ask a running deploy to stop at its next safe point (SIGTERM to its process)."""
        abort(self.session, self.user, deploy_id)

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

    def markers(self, since: float) -> list[Marker]:
        return self.session.history.markers(since, environment=self.environment)

    def verdicts(self, deploy_id: str) -> list[WatchVerdict]:
        return self.session.history.verdicts(deploy_id)


def open_service(inventory_path: str | Path) -> EngineService:
    """The service for an inventory file (a ConsoleError names any mistake in it)."""
    return EngineService(load_inventory(inventory_path))
