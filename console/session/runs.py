"""The runs a session holds the lock for: a deploy, a switch, one step of the newest build.

Each takes the environment's lock (`Session.hold`), plans, subscribes the event log, the
history, the webhook notifier and an optional printer, runs the pipeline and releases the
lock, whatever happens. A deploy also sends the deploy markers and, once hosts are
switched and key metrics are configured, starts the watcher process; a rolling deploy
watches while it activates, and a degraded metric halts its next chunk.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Callable

from console.config.inventory import Inventory
from console.core.errors import ConsoleError
from console.core.events import DeployDone, Subscriber
from console.core.text import check_line, printable
from console.fleet import remote
from console.fleet.connection import Connect
from console.metrics.statsd import ensure_collector
from console.metrics.watch import Watch
from console.pipeline.plan import DeployRequest, Plan
from console.session.hold import Session
from console.session.watcher import start_watcher
from console.state.eventlog import EventLog
from console.state.history import History


def run_deploy(
    inventory: Inventory,
    request: DeployRequest,
    *,
    printer: Subscriber | None = None,
    stop: threading.Event | None = None,
    on_planned: Callable[[str], None] = lambda deploy_id: None,
    connect: Connect | None = None,
) -> DeployDone:
    """Deploy under the lock; refusals, bad refs and a held lock raise ConsoleError.
    `on_planned` hears the deploy id before the run starts; `connect` makes each host's
    connection (default: Fabric, `console.fleet.transport.HostLink`)."""
    if request.override is not None:
        check_line(request.override, "--override", limit=500)
    if request.ref is not None:
        check_line(request.ref, "--ref")
    session = Session(inventory)
    ensure_statsd(inventory)
    began = time.time()
    reason = f"deploy {request.ref or inventory.branch}" + (
        f" (override: {request.override})" if request.override else ""
    )
    with session.hold(request.user, reason, stop=stop) as held:
        pipeline = held.pipeline(connect)
        plan = unique(pipeline.plan(request), session.log)
        if plan.refused and not request.override:
            raise ConsoleError(plan.refused)
        held.record(plan.deploy_id, printer)
        on_planned(plan.deploy_id)
        push = _Push(inventory, plan, began, held.bus)
        try:
            done = pipeline.run(plan, on_activated=push.activated, halt_reason=push.halt_reason)
        finally:
            push.stop()
    if push.since is not None and inventory.metrics.key:
        start_watcher(inventory, done.deploy_id, baseline_end=began, activated=push.since)
    return held.bus.settled(done)


class _Push:
    """When a deploy's first hosts were switched, and its metric watch while it activates
    rolling: a degraded key metric is the reason to halt the next chunk."""

    def __init__(self, inventory: Inventory, plan: Plan, began: float, emit: Subscriber) -> None:
        self.since: float | None = None
        self.watch = (
            Watch(inventory, deploy_id=plan.deploy_id, baseline_end=began, emit=emit)
            if plan.request.rolling and inventory.metrics.key
            else None
        )

    def activated(self) -> None:
        if self.since is not None:
            return
        self.since = time.time()
        if self.watch is not None:
            self.watch.activated = self.since
            self.watch.start()

    def halt_reason(self) -> str | None:
        if self.watch is None or not self.watch.degraded():
            return None
        return "; ".join(v.summary for v in self.watch.verdicts().values() if v.verdict == "degraded")

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()


def run_switch(
    inventory: Inventory,
    release: str | None,
    user: str,
    *,
    printer: Subscriber | None = None,
    stop: threading.Event | None = None,
    on_planned: Callable[[str], None] = lambda deploy_id: None,
    connect: Connect | None = None,
) -> DeployDone:
    """Switch every host to an existing release (default: the one before the live one)."""
    session = Session(inventory)
    target = release or previous_release(session.history)
    deploy_id = f"{remote.stamp()}-switch-{remote.release_revision(target)}"
    with session.hold(user, f"switch to {target}", stop=stop) as held:
        pipeline = held.pipeline(connect)
        held.record(deploy_id, printer)
        on_planned(deploy_id)
        done = pipeline.switch(target, user, deploy_id)
    return held.bus.settled(done)


def run_step(
    inventory: Inventory,
    phase: str,
    user: str,
    *,
    printer: Subscriber | None = None,
    connect: Connect | None = None,
) -> DeployDone:
    """One host phase of the newest build (`invoke sync-assets` etc.), under the lock."""
    session = Session(inventory)
    deploy_id = f"{remote.stamp()}-{phase}"
    with session.hold(user, f"{phase} of the newest build") as held:
        pipeline = held.pipeline(connect)
        held.record(deploy_id, printer)
        done = pipeline.run_step(phase, user, deploy_id)
    return held.bus.settled(done)


def only_hosts(inventory: Inventory, history: History, only: str | None) -> tuple[str, ...]:
    """The hosts `--only` names: "failed" (those that failed in the last deploy with
    failures and have not succeeded since), or host names separated by commas. None: the
    whole fleet; an empty list (`--only ''`, `--only ,`) is a mistake, never the whole fleet."""
    if only is None:
        return ()
    if only.strip() == "failed":
        failed = history.failed_hosts_of_last(environment=inventory.environment)
        if not failed:
            raise ConsoleError("--only failed: no host failed in the last deploy of " + inventory.environment)
        return tuple(failed)
    names = tuple(n.strip() for n in only.split(",") if n.strip())
    if not names:
        raise ConsoleError(f"--only: expected 'failed' or host names separated by commas, got '{printable(only, 40)}'")
    for name in names:
        try:
            inventory.host(name)
        except ConsoleError as exc:
            raise ConsoleError(f"--only: {exc}") from None
    return names


def previous_release(history: History) -> str:
    """The release that was live before the live one, from the history."""
    live: str | None = None
    for record in history.deploys(200):
        if record.result not in ("ok", "partial") or not record.release:
            continue
        if live is None:
            live = record.release
        elif record.release != live:
            return record.release
    raise ConsoleError("no earlier release in the history to switch back to: pass --release ID")


def ensure_statsd(inventory: Inventory) -> None:
    """The embedded StatsD collector runs whenever a key metric reads from it, so the
    baseline before a deploy exists when the watch after it needs one."""
    if any(m.source == "statsd" for m in inventory.metrics.key):
        ensure_collector(inventory)


def unique(plan: Plan, log: EventLog) -> Plan:
    """Release ids sort by time also for deploys less than a second apart (cleanup keeps the
    newest by id, and never current or the one before it): a release stamped no later than
    the newest so far takes the next second. Two deploys of one commit get distinct ids."""
    newest = max((i[:16] for i in log.ids() if remote.RELEASE_ID.match(i)), default="")
    if plan.release[:16] <= newest:
        later = calendar.timegm(time.strptime(newest, remote.STAMP)) + 1
        plan.release = plan.deploy_id = remote.release_id(plan.revision, later)
    base, n = plan.release, 1
    while log.path(plan.deploy_id).exists():
        n += 1
        plan.release = plan.deploy_id = f"{base}-{n}"
    return plan
