"""A deploy is a stream of typed events.

The engine emits these and nothing else; the CLI output, the TUI, the history store, the
per-deploy event log and the webhook notifier are all subscribers. Every event is a
frozen dataclass that round-trips through one JSON object per line (`to_json` /
`from_json`), so a console that attaches to a running deploy reads exactly what the
engine wrote. Events carry no secrets: commands are logged, keys and tokens are not.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: The phases of a deploy, in the order they run. One name per idea: these are also
#: the invoke task names and the column titles in the console.
PHASES: tuple[str, ...] = (
    "update",
    "build",
    "sync-assets",
    "sync-code",
    "activate",
    "restart",
    "verify",
    "cleanup",
)
#: Phases that run on the deploy host only, not on the fleet.
LOCAL_PHASES: frozenset[str] = frozenset({"update", "build"})


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    """Base of every deploy event: which deploy, and when."""

    kind: ClassVar[str] = "event"
    deploy_id: str
    ts: float = field(default_factory=_now, kw_only=True)


@dataclass(frozen=True)
class DeployStarted(Event):
    """The plan is fixed and the lock is held; nothing on any host has changed yet."""

    kind: ClassVar[str] = "deploy-started"
    environment: str
    user: str
    release: str
    revision: str
    previous_revision: str | None
    hosts: tuple[str, ...]
    chunks: tuple[tuple[str, ...], ...]
    phases: tuple[str, ...]
    strategy: str
    rolling: bool = False
    action: str = "deploy"  # "deploy" or "switch"
    commits: int = 0
    override: str | None = None
    pid: int = 0
    ref: str | None = None  # the ref asked for (branch, tag or SHA); None: the branch's head


@dataclass(frozen=True)
class PhaseStarted(Event):
    """A phase begins; `hosts` are the hosts it will touch (empty for local phases)."""

    kind: ClassVar[str] = "phase-started"
    phase: str
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostProgress(Event):
    """A host is working on a phase (sent when it starts, and as transfers advance)."""

    kind: ClassVar[str] = "host-progress"
    phase: str
    host: str
    message: str = ""
    bytes: int = 0


@dataclass(frozen=True)
class HostDone(Event):
    """A host finished a phase."""

    kind: ClassVar[str] = "host-done"
    phase: str
    host: str
    seconds: float
    bytes: int = 0
    message: str = ""


@dataclass(frozen=True)
class HostFailed(Event):
    """A host failed a phase; it takes no further part in this deploy."""

    kind: ClassVar[str] = "host-failed"
    phase: str
    host: str
    reason: str
    seconds: float = 0.0
    exit_code: int | None = None
    output: str = ""  # the last lines of output, censored


@dataclass(frozen=True)
class HostOutput(Event):
    """Lines a host's step printed (or did), for the live log: the command run, then what
    it wrote. Already censored and printable (`console.pipeline.output`), and bounded per
    host and phase, so a chatty restart script cannot flood the log."""

    kind: ClassVar[str] = "host-output"
    phase: str
    host: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseDone(Event):
    """A phase ended on every host it touched."""

    kind: ClassVar[str] = "phase-done"
    phase: str
    ok: int
    failed: int
    seconds: float
    skipped: str = ""  # why the phase did nothing, e.g. "no restart command in the inventory"


@dataclass(frozen=True)
class Notice(Event):
    """Something the person deploying should read, that is not a host's result."""

    kind: ClassVar[str] = "notice"
    message: str
    level: str = "info"  # "info", "warning" or "error"


@dataclass(frozen=True)
class DeployDone(Event):
    """The deploy ended. `result` is ok, partial (some hosts failed), failed or aborted."""

    kind: ClassVar[str] = "deploy-done"
    result: str
    seconds: float
    hosts_ok: tuple[str, ...] = ()
    hosts_failed: tuple[tuple[str, str], ...] = ()  # (host, reason)
    message: str = ""


@dataclass(frozen=True)
class WatchVerdict(Event):
    """A key metric compared with its baseline after the push."""

    kind: ClassVar[str] = "watch-verdict"
    metric: str
    verdict: str  # "ok", "degraded" or "no data"
    summary: str  # e.g. "checkouts/min 41 → 28, -32%, limit -20%"
    baseline: float | None = None
    current: float | None = None
    change: float | None = None  # relative, -0.32 for -32%
    dry_run: bool = False
    final: bool = False  # the last verdict of the watch window


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        DeployStarted,
        PhaseStarted,
        HostProgress,
        HostDone,
        HostFailed,
        HostOutput,
        PhaseDone,
        Notice,
        DeployDone,
        WatchVerdict,
    )
}

Subscriber = Callable[[Event], None]


def to_json(event: Event) -> str:
    """One line of JSON with the event's kind and fields."""
    data: dict[str, Any] = {"event": event.kind}
    data.update(dataclasses.asdict(event))
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def from_json(line: str | dict[str, Any]) -> Event:
    """The event a `to_json` line describes; unknown fields are ignored (newer writers)."""
    data = json.loads(line) if isinstance(line, str) else dict(line)
    cls = EVENT_TYPES[data.pop("event")]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _tuples(v) for k, v in data.items() if k in names})
