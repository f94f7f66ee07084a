"""A deploy, switch or step under the environment's lock, with its subscribers.

    session = Session(inventory)
    with session.hold(user, reason, stop=stop) as held:   # takes the lock (or ConsoleError)
        pipeline = held.pipeline()
        plan = pipeline.plan(request)                    # may still refuse: nothing recorded yet
        held.record(plan.deploy_id, printer)             # event log, history, webhooks, printer
        done = pipeline.run(plan)
    # the lock is released here, whatever happened

`hold` always releases the lock and closes the event log and the history's connection;
after a run that ended normally it sends the end marker and drains the webhook notifier
(its notices go to the bus first). Events reach the subscribers through one `Bus`.
"""

from __future__ import annotations

import os
import pwd
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from console.config.inventory import Inventory
from console.core.errors import ConsoleError
from console.core.events import Event, Subscriber
from console.core.text import check_line
from console.fleet.connection import Connect
from console.metrics.markers import send_marker
from console.pipeline.run import Pipeline
from console.session.bus import Bus
from console.session.notify import Notifier
from console.state.eventlog import EventLog, LogWriter
from console.state.files import private_dir
from console.state.history import History
from console.state.lock import Lock


def current_user() -> str:
    """Who is deploying: the OS account this process runs as (from `pwd`), which no
    variable can change, so the audit trail names who really deployed. `$DEPLOY_USER`,
    when set, is a display name recorded beside it, `alice (Alice Smith)`: one line of at
    most 64 characters without control characters, or a ConsoleError."""
    try:
        account = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry (a container): the number is the account
        account = f"uid {os.getuid()}"
    display = os.environ.get("DEPLOY_USER", "").strip()
    if not display or display == account:
        return account
    return f"{account} ({check_line(display, 'DEPLOY_USER (a display name)', limit=64)})"


def _ignore(event: Event) -> None:
    """The subscriber of a pipeline nobody listens to (planning, the dry run, the queue)."""


class Session:
    """The state one deploy process shares with every other: lock, history, event logs."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        private_dir(inventory.state_dir)
        self.history = History(inventory.state_dir)
        self.log = EventLog(inventory.state_dir)
        self.lock = Lock(inventory.state_dir, inventory.environment, audit=self.history)

    def pipeline(
        self, emit: Subscriber = _ignore, stop: threading.Event | None = None, *, connect: Connect | None = None
    ) -> Pipeline:
        """A pipeline that starts from the live revision (and release) in the history."""
        return Pipeline(
            self.inventory,
            emit,
            stop=stop,
            live_revision=self.history.live_revision(),
            live_release=self.history.live_release(environment=self.inventory.environment),
            connect=connect,
        )

    @contextmanager
    def hold(self, user: str, reason: str, *, stop: threading.Event | None = None) -> Iterator[Held]:
        """Hold the environment's lock around one run; a lock held by another raises
        ConsoleError before anything happens. Always released (see the module doc)."""
        check_line(user, "user")
        self.lock.acquire(user, reason, pid=os.getpid())
        held = Held(self, stop or threading.Event())
        try:
            yield held
            held.finish()
        finally:
            held.close()
            self.history.close()
            try:
                self.lock.release(user, pid=os.getpid())
            except ConsoleError:
                pass  # taken over meanwhile (unlock --force): it is no longer ours to release


class Held:
    """One run under the lock: its bus, its subscribers, its pipeline (from `Session.hold`)."""

    def __init__(self, session: Session, stop: threading.Event) -> None:
        self.session = session
        self.stop = stop
        self.bus = Bus()
        self.deploy_id = ""
        self._writer: LogWriter | None = None
        self._notifier = Notifier(session.inventory.webhooks, session.inventory.environment)

    def pipeline(self, connect: Connect | None = None) -> Pipeline:
        """The run's pipeline, emitting to the bus and stopped by the hold's `stop`."""
        return self.session.pipeline(self.bus, self.stop, connect=connect)

    def record(self, deploy_id: str, printer: Subscriber | None = None) -> None:
        """The run has its id: name it in the lock, subscribe the event log, the history,
        the webhooks and `printer` in that order (the records first, so a printer that
        blocks holds none of them back), and send the start marker."""
        session = self.session
        session.lock.update(deploy_id=deploy_id, pid=os.getpid())
        self._writer = session.log.writer(deploy_id)
        self.bus.subscribe("event log", self._writer)
        self.bus.subscribe("history", session.history.record)
        self.bus.subscribe("webhook notifier", self._notifier.record)
        if printer is not None:
            self.bus.subscribe("printer", printer)
        self.deploy_id = deploy_id
        send_marker(session.inventory, f"{deploy_id} start")

    def finish(self) -> None:
        """After a run that ended normally: the end marker, then the notifier's last notices."""
        if self.deploy_id:
            send_marker(self.session.inventory, f"{self.deploy_id} end")
            for notice in self._notifier.close():
                self.bus(notice)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
