"""The event bus of one deploy: every event to every subscriber, in order.

Fanout threads emit concurrently; the bus hands one event at a time to each subscriber
in the order they subscribed (the records first, then the printer).

A subscriber that raises never stops the deploy or the others. It is taken off the bus
at once and gets no further events: a record that missed an event has a hole, and one fed
on would look whole. The others get a warning `Notice` that names it and the error, and
every `DeployDone` after the failure carries it in its message ("event log incomplete:
... No space left on device"), so the history, the printed summary, the webhooks and the
returned result say which record is incomplete, also when the one that failed is the
event log that `invoke status` reads.
"""

from __future__ import annotations

import dataclasses
import threading

from console.core.errors import ConsoleError
from console.core.events import DeployDone, Event, Notice, Subscriber


class Bus:
    """A subscriber that hands each event on to named subscribers (see the module doc)."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._lock = threading.Lock()
        #: "<name> incomplete: <error>" for every subscriber that failed, in order
        self.failures: list[str] = []

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        """Add `subscriber` after the others; `name` says what it is in a failure notice."""
        with self._lock:
            self._subscribers.append((name, subscriber))

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, DeployDone):
                event = self._settled(event)
            pending = [event]
            while pending:  # the notices of subscribers that fail go to the rest, in turn
                pending += self._deliver(pending.pop(0))

    def settled(self, done: DeployDone) -> DeployDone:
        """`done` with every subscriber failure so far in its message."""
        with self._lock:
            return self._settled(done)

    def _settled(self, done: DeployDone) -> DeployDone:
        if not self.failures:
            return done
        return dataclasses.replace(done, message="; ".join([m for m in (done.message,) if m] + self.failures))

    def _deliver(self, event: Event) -> list[Notice]:
        """Hand `event` to every subscriber; returns a notice per one that failed (now off the bus)."""
        notices = []
        for entry in list(self._subscribers):
            name, subscriber = entry
            try:
                subscriber(event)
            except Exception as exc:  # noqa: BLE001 - any failure of a subscriber is reported, never fatal
                error = str(exc) if isinstance(exc, ConsoleError) else f"{type(exc).__name__}: {exc}"
                self._subscribers.remove(entry)
                self.failures.append(f"{name} incomplete: {error}")
                message = f"the {name} failed at {event.kind} and gets no further events: {error}"
                notices.append(Notice(event.deploy_id, message=message, level="warning"))
        return notices
