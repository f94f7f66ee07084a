"""Where a deploy stands, folded from its events.

`DeployView.apply(event)` is the one place that turns the event stream into per-host and
per-phase state. The CLI's live output and `status`, the TUI's fleet grid and the history
store all read a `DeployView`, so they can never disagree about what a host is doing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from console.core.events import (
    DeployDone,
    DeployStarted,
    Event,
    HostDone,
    HostFailed,
    HostProgress,
    Notice,
    PhaseDone,
    PhaseStarted,
    WatchVerdict,
)

#: Host states in the order a healthy host passes through them, then the two a deploy can
#: end a host in otherwise: `unchanged` (the deploy ended before switching it: it serves the
#: release it had) and `failed`.
HOST_STATES: tuple[str, ...] = (
    "waiting",
    "assets",
    "staged",
    "switching",
    "restarting",
    "verified",
    "unchanged",
    "failed",
)

#: The states of a host that has not been switched yet: at DeployDone, a host in one of them
#: that the deploy does not name ok (a step run, `invoke sync-code`, names its hosts ok)
#: becomes `unchanged`.
NOT_SWITCHED = frozenset({"waiting", "assets", "staged"})

# What a host has reached when it is working on (first) or has finished (second) a phase.
_STATE_BY_PHASE: dict[str, tuple[str, str]] = {
    "sync-assets": ("waiting", "assets"),
    "sync-code": ("assets", "staged"),
    "activate": ("switching", "switching"),
    "restart": ("restarting", "restarting"),
    "verify": ("restarting", "verified"),
}


@dataclass
class HostView:
    """One host in one deploy."""

    name: str
    state: str = "waiting"
    phase: str = ""
    message: str = ""
    reason: str = ""  # why it failed (HostFailed.reason)
    output: str = ""
    exit_code: int | None = None
    bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds


@dataclass
class PhaseView:
    """One phase of one deploy."""

    name: str
    state: str = "pending"  # pending, running, done
    hosts: int = 0
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    skipped: str = ""


class DeployView:
    """The state of one deploy, rebuilt from its events in order."""

    def __init__(self) -> None:
        self.started: DeployStarted | None = None
        self.done: DeployDone | None = None
        self.hosts: dict[str, HostView] = {}
        self.phases: dict[str, PhaseView] = {}
        self.verdicts: dict[str, WatchVerdict] = {}
        self.notices: list[Notice] = []
        self.events = 0

    @classmethod
    def of(cls, events: list[Event]) -> DeployView:
        view = cls()
        for event in events:
            view.apply(event)
        return view

    @property
    def deploy_id(self) -> str:
        return self.started.deploy_id if self.started else ""

    @property
    def running(self) -> bool:
        return self.started is not None and self.done is None

    def apply(self, event: Event) -> str | None:
        """Fold one event in; returns the host it changed, if any."""
        self.events += 1
        if isinstance(event, DeployStarted):
            self.started = event
            self.hosts = {h: HostView(h) for h in event.hosts}
            self.phases = {p: PhaseView(p) for p in event.phases}
        elif isinstance(event, PhaseStarted):
            phase = self.phases.setdefault(event.phase, PhaseView(event.phase))
            phase.state, phase.hosts = "running", len(event.hosts)
        elif isinstance(event, PhaseDone):
            phase = self.phases.setdefault(event.phase, PhaseView(event.phase))
            phase.state, phase.ok, phase.failed = "done", event.ok, event.failed
            phase.seconds, phase.skipped = event.seconds, event.skipped
        elif isinstance(event, (HostProgress, HostDone, HostFailed)):
            return self._apply_host(event)
        elif isinstance(event, Notice):
            self.notices.append(event)
        elif isinstance(event, WatchVerdict):
            self.verdicts[event.metric] = event
        elif isinstance(event, DeployDone):
            self.done = event
            ok = set(event.hosts_ok)
            for host in self.hosts.values():
                if host.state in NOT_SWITCHED and host.name not in ok:
                    host.state = "unchanged"  # a finished deploy leaves nobody "in progress"
        return None

    def _apply_host(self, event: HostProgress | HostDone | HostFailed) -> str:
        host = self.hosts.setdefault(event.host, HostView(event.host))
        host.phase = event.phase
        working, finished = _STATE_BY_PHASE.get(event.phase, (host.state, host.state))
        if isinstance(event, HostFailed):
            host.state, host.reason = "failed", event.reason
            host.output, host.exit_code = event.output, event.exit_code
            host.seconds[event.phase] = event.seconds
        elif host.state == "failed":
            pass  # a failed host stays failed for the rest of this deploy
        elif isinstance(event, HostDone):
            host.state, host.message = finished, event.message
            host.seconds[event.phase] = event.seconds
            host.bytes += event.bytes
        else:
            host.state, host.message = working, event.message
        return event.host

    def counts(self) -> Counter[str]:
        """How many hosts are in each state."""
        return Counter(h.state for h in self.hosts.values())

    def failed_hosts(self) -> dict[str, str]:
        """Failed host -> reason."""
        return {h.name: h.reason for h in self.hosts.values() if h.state == "failed"}
