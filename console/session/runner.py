"""Runs a deploy with everything around it: the lock, the subscribers, detaching.

`run_deploy` / `run_switch` take the environment's lock, wire the pipeline's events to
the event log, the history, the webhook notifier and an optional printer, send the deploy
markers and release the lock at the end, whatever happens.

`start_detached` runs the same thing as a process of its own (its own session, stdin
closed), so closing the console or killing the terminal that started it, even with
SIGKILL, never stops or corrupts the deploy. The child reports "planned as <id>" or the
one-line error through a small handoff file, then any console or `invoke status --follow`
attaches through the event log.
"""

from __future__ import annotations

import argparse
import calendar
import getpass
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from console.config.inventory import Inventory, load_inventory
from console.core.errors import ConsoleError
from console.core.events import DeployDone, Event, Notice, Subscriber
from console.fleet import remote
from console.metrics.markers import send_marker
from console.metrics.statsd import ensure_collector
from console.metrics.watch import Watch
from console.pipeline.plan import DeployRequest, Plan
from console.pipeline.run import Pipeline
from console.session.notify import Notifier
from console.state.eventlog import EventLog
from console.state.files import private_dir
from console.state.history import History
from console.state.lock import Lock


class Bus:
    """Hands every event to every subscriber, one event at a time (fanout threads emit
    concurrently). A subscriber that raises is reported once and dropped: a broken
    printer or webhook never stops a deploy."""

    def __init__(self, *subscribers: Subscriber | None) -> None:
        self.subscribers: list[Subscriber] = [s for s in subscribers if s is not None]
        self._lock = threading.Lock()

    def add(self, subscriber: Subscriber) -> None:
        with self._lock:
            self.subscribers.append(subscriber)

    def __call__(self, event: Event) -> None:
        with self._lock:
            for subscriber in list(self.subscribers):
                try:
                    subscriber(event)
                except Exception as exc:  # noqa: BLE001 - reported, never fatal
                    self.subscribers.remove(subscriber)
                    message = f"a subscriber failed and was dropped: {type(exc).__name__}: {exc}"
                    for other in self.subscribers:
                        try:
                            other(Notice(event.deploy_id, message=message, level="warning"))
                        except Exception:  # noqa: BLE001
                            pass


def current_user() -> str:
    return os.environ.get("DEPLOY_USER") or getpass.getuser()


class Session:
    """The state one deploy process shares with every other: lock, history, event logs."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        private_dir(inventory.state_dir)
        self.history = History(inventory.state_dir)
        self.log = EventLog(inventory.state_dir)
        self.lock = Lock(inventory.state_dir, inventory.environment)

    def pipeline(self, emit: Subscriber, stop: threading.Event) -> Pipeline:
        return Pipeline(self.inventory, emit, stop=stop, live_revision=self.history.live_revision())

    def run(
        self,
        user: str,
        reason: str,
        deploy_id_for: Callable[[Pipeline], str],
        body: Callable[[Pipeline, Bus], DeployDone],
        *,
        printer: Subscriber | None = None,
        stop: threading.Event | None = None,
        on_planned: Callable[[str], None] = lambda deploy_id: None,
    ) -> DeployDone:
        """Hold the lock around one deploy or switch and wire its subscribers."""
        inv = self.inventory
        stop = stop or threading.Event()
        self.lock.acquire(user, reason, pid=os.getpid())
        notifier = Notifier(inv.webhooks, inv.environment)
        try:
            bus = Bus(printer)
            pipeline = self.pipeline(bus, stop)
            deploy_id = deploy_id_for(pipeline)
            self.lock.update(deploy_id=deploy_id, pid=os.getpid())
            writer = self.log.writer(deploy_id)
            bus.subscribers[:0] = [writer, self.history.record, notifier.record]
            on_planned(deploy_id)
            send_marker(inv, f"{deploy_id} start")
            done = body(pipeline, bus)
            send_marker(inv, f"{deploy_id} end")
            for notice in notifier.close():
                bus(notice)
            writer.close()
            return done
        finally:
            self.history.close()
            try:
                self.lock.release(user, pid=os.getpid())
            except ConsoleError:
                pass


def run_deploy(
    inventory: Inventory,
    request: DeployRequest,
    *,
    printer: Subscriber | None = None,
    stop: threading.Event | None = None,
    on_planned: Callable[[str], None] = lambda deploy_id: None,
) -> DeployDone:
    """Deploy under the lock; refusals, bad refs and a held lock raise ConsoleError."""
    session = Session(inventory)
    ensure_statsd(inventory)
    plan: dict[str, Plan] = {}
    began = time.time()
    activated: list[float] = []

    def planned(pipeline: Pipeline) -> str:
        plan["p"] = unique(pipeline.plan(request), session.log)
        if plan["p"].refused and not request.override:
            raise ConsoleError(plan["p"].refused)
        return plan["p"].deploy_id

    def body(pipeline: Pipeline, bus: Bus) -> DeployDone:
        deploy_id = plan["p"].deploy_id
        watch = (
            Watch(inventory, deploy_id=deploy_id, baseline_end=began, emit=bus)
            if (request.rolling and inventory.metrics.key)
            else None
        )

        def on_activated() -> None:
            activated.append(time.time())
            if watch is not None:
                watch.activated = activated[0]
                watch.start()

        def halt_reason() -> str | None:
            if watch is None or not watch.degraded():
                return None
            return "; ".join(v.summary for v in watch.verdicts().values() if v.verdict == "degraded")

        try:
            return pipeline.run(plan["p"], on_activated=on_activated, halt_reason=halt_reason)
        finally:
            if watch is not None:
                watch.stop()

    reason = f"deploy {request.ref or inventory.branch}" + (
        f" (override: {request.override})" if request.override else ""
    )
    done = session.run(
        request.user,
        reason,
        planned,
        body,
        printer=printer,
        stop=stop,
        on_planned=on_planned,
    )
    if activated and inventory.metrics.key:
        start_watcher(inventory, done.deploy_id, baseline_end=began, activated=activated[0])
    return done


def start_watcher(inventory: Inventory, deploy_id: str, *, baseline_end: float, activated: float) -> None:
    """Watch the key metrics after a push in a process of its own, so neither the terminal
    nor the lock waits for the watch window; its verdicts join the deploy's log and history."""
    job = {"watch": {"deploy_id": deploy_id, "baseline_end": baseline_end, "activated": activated}}
    runs = private_dir(inventory.state_dir / "runs")
    with open(runs / f"watch-{deploy_id}.out", "wb") as out:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "console.session.runner",
                "--inventory",
                str(inventory.path),
                "--job",
                json.dumps(job),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def _watch(inventory: Inventory, deploy_id: str, baseline_end: float, activated: float) -> None:
    """The watcher process: verdicts until the window ends or a newer deploy starts."""
    session = Session(inventory)
    notifier = Notifier(inventory.webhooks, inventory.environment)
    for event in session.log.read(deploy_id):  # the notifier needs the deploy's story
        if not isinstance(event, DeployDone):  # already announced by the deploy itself
            notifier.record(event)
    writer = session.log.writer(deploy_id)
    bus = Bus(writer, session.history.record, notifier.record)
    watch = Watch(inventory, deploy_id=deploy_id, baseline_end=baseline_end, emit=bus, activated=activated).start()
    while not watch.join(1.0):
        if session.log.latest() != deploy_id:
            watch.stop()  # superseded: the next deploy watches from its own activation
    notifier.close()
    writer.close()


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
        later = calendar.timegm(time.strptime(newest, "%Y%m%dT%H%M%SZ")) + 1
        plan.release = plan.deploy_id = remote.release_id(plan.revision, later)
    base, n = plan.release, 1
    while log.path(plan.deploy_id).exists():
        n += 1
        plan.release = plan.deploy_id = f"{base}-{n}"
    return plan


def run_switch(
    inventory: Inventory,
    release: str | None,
    user: str,
    *,
    printer: Subscriber | None = None,
    stop: threading.Event | None = None,
    on_planned: Callable[[str], None] = lambda deploy_id: None,
) -> DeployDone:
    """Switch every host to an existing release (default: the one before the live one)."""
    session = Session(inventory)
    target = release or previous_release(session.history)
    deploy_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-switch-{target.split('-')[1][:7]}"
    return session.run(
        user,
        f"switch to {target}",
        lambda pipeline: deploy_id,
        lambda pipeline, bus: pipeline.switch(target, user, deploy_id=deploy_id),
        printer=printer,
        stop=stop,
        on_planned=on_planned,
    )


def run_step(inventory: Inventory, phase: str, user: str, *, printer: Subscriber | None = None) -> DeployDone:
    """One host phase of the newest build (`invoke sync-assets` etc.), under the lock."""
    session = Session(inventory)
    deploy_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{phase}"
    return session.run(
        user,
        f"{phase} of the newest build",
        lambda pipeline: deploy_id,
        lambda pipeline, bus: pipeline.run_step(phase, user, deploy_id),
        printer=printer,
    )


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


# -- detached runs ------------------------------------------------------------------------


def start_detached(inventory: Inventory, request: DeployRequest, *, timeout: float = 180.0) -> str:
    """Start a deploy in a process of its own; returns its deploy id once it is planned
    (or raises the child's one-line error: lock held, refused range, unknown ref)."""
    return _spawn(inventory, {"deploy": asdict(request)}, timeout)


def start_detached_switch(inventory: Inventory, release: str | None, user: str, *, timeout: float = 60.0) -> str:
    return _spawn(inventory, {"switch": {"release": release, "user": user}}, timeout)


def _spawn(inventory: Inventory, job: dict, timeout: float) -> str:
    runs = private_dir(inventory.state_dir / "runs")
    stamp = f"{time.time():.6f}-{os.getpid()}"
    handoff = runs / f"{stamp}.handoff"
    output = runs / f"{stamp}.out"
    with open(output, "wb") as out:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "console.session.runner",
                "--inventory",
                str(inventory.path),
                "--job",
                json.dumps(job),
                "--handoff",
                str(handoff),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handoff.exists():
            kind, _, text = handoff.read_text().partition(" ")
            if kind == "planned":
                return text.strip()
            raise ConsoleError(text.strip())
        if child.poll() is not None and not handoff.exists():
            lines = output.read_text(errors="replace").strip().splitlines()
            raise ConsoleError(f"the deploy process exited {child.returncode}: {lines[-1] if lines else 'no output'}")
        time.sleep(0.05)
    raise ConsoleError(f"the deploy process did not report within {timeout:g} s (see {output})")


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.session.runner")
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--handoff")
    args = parser.parse_args(argv)
    job = json.loads(args.job)
    if "watch" in job:
        spec = job["watch"]
        _watch(load_inventory(args.inventory), spec["deploy_id"], spec["baseline_end"], spec["activated"])
        return 0
    handoff = Path(args.handoff)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # stop at the next safe point
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def planned(deploy_id: str) -> None:
        handoff.write_text(f"planned {deploy_id}")

    try:
        inventory = load_inventory(args.inventory)
        if "deploy" in job:
            spec = job["deploy"]
            spec["hosts"] = tuple(spec.get("hosts") or ())
            run_deploy(inventory, DeployRequest(**spec), stop=stop, on_planned=planned)
        else:
            spec = job["switch"]
            run_switch(inventory, spec["release"], spec["user"], stop=stop, on_planned=planned)
    except ConsoleError as exc:
        if not handoff.exists():
            handoff.write_text(f"error {exc}")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
