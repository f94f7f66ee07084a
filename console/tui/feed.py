"""Coalescing events from a worker thread into batches the UI can afford.

A deploy across 1,000 hosts can emit thousands of events a second. The follow worker
folds each event into a `DeployView` here (cheap, no UI), and remembers which hosts
changed; the UI takes one `FleetBatch` every 100 ms and repaints once. Newer state
replaces older state for the same host, so the UI's work per batch is bounded by the
number of hosts, never by the number of events.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass, field

from console.core.events import (
    DeployDone,
    DeployStarted,
    Event,
    HostDone,
    HostFailed,
    Notice,
    PhaseDone,
    PhaseStarted,
    WatchVerdict,
)
from console.core.progress import DeployView, HostView, PhaseView


@dataclass
class FleetBatch:
    """What changed in one deploy since the last batch."""

    deploy_id: str
    reset: bool  # a new DeployStarted arrived: replace the whole fleet
    started: DeployStarted | None
    hosts: dict[str, HostView]  # copies of the hosts that changed
    phases: dict[str, PhaseView]  # copies of every phase
    phase_done: dict[str, int]  # phase -> hosts that finished it (ok or failed)
    counts: Counter[str]
    verdicts: dict[str, WatchVerdict]
    notices: list[Notice] = field(default_factory=list)  # new since the last batch
    done: DeployDone | None = None
    events: int = 0  # events folded so far
    last_ts: float = 0.0  # time of the newest event


class DeployFeed:
    """Folds events on one thread, hands out batches on another. Thread-safe."""

    def __init__(self, deploy_id: str) -> None:
        self.deploy_id = deploy_id
        self.view = DeployView()
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._reset = False
        self._changed = False
        self._notices: list[Notice] = []
        self._phase_done: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._last_ts = 0.0
        self.finished = False  # the follow worker ended

    def fold(self, event: Event) -> None:
        """Apply one event (called by the follow worker)."""
        with self._lock:
            view = self.view
            self._last_ts = max(self._last_ts, event.ts)
            if isinstance(event, (HostDone, HostFailed)):
                host = view.hosts.get(event.host)
                before = host.state if host else None
                if host is None or event.phase not in host.seconds:
                    self._phase_done[event.phase] += 1
                view.apply(event)
                self._count(before, view.hosts[event.host].state)
                self._dirty.add(event.host)
            elif isinstance(event, DeployStarted):
                view.apply(event)
                self._dirty.clear()
                self._phase_done.clear()
                self._counts = view.counts()
                self._reset = True
            elif isinstance(event, DeployDone):
                states = {name: host.state for name, host in view.hosts.items()}
                view.apply(event)  # hosts never switched become unchanged
                for name, host in view.hosts.items():
                    if host.state != states[name]:
                        self._count(states[name], host.state)
                        self._dirty.add(name)
            elif isinstance(event, (PhaseStarted, PhaseDone, WatchVerdict)):
                view.apply(event)
            elif isinstance(event, Notice):
                view.apply(event)
                self._notices.append(event)
            else:  # HostProgress and anything newer
                host_name = getattr(event, "host", None)
                host = view.hosts.get(host_name) if host_name else None
                before = host.state if host else None
                changed = view.apply(event)
                if changed:
                    self._count(before, view.hosts[changed].state)
                    self._dirty.add(changed)
            self._changed = True

    def _count(self, before: str | None, after: str) -> None:
        if before != after:
            if before is not None:
                self._counts[before] -= 1
            self._counts[after] += 1

    def take(self) -> FleetBatch | None:
        """Everything that changed since the last call, or None (called by the UI)."""
        with self._lock:
            if not self._changed:
                return None
            view = self.view
            hosts = view.hosts if self._reset else {n: view.hosts[n] for n in self._dirty}
            batch = FleetBatch(
                deploy_id=self.deploy_id,
                reset=self._reset,
                started=view.started,
                hosts={n: dataclasses.replace(h, seconds=dict(h.seconds)) for n, h in hosts.items()},
                phases={n: dataclasses.replace(p) for n, p in view.phases.items()},
                phase_done=dict(self._phase_done),
                counts=+self._counts,
                verdicts=dict(view.verdicts),
                notices=self._notices,
                done=view.done,
                events=view.events,
                last_ts=self._last_ts,
            )
            self._dirty = set()
            self._notices = []
            self._reset = False
            self._changed = False
            return batch
