"""A deploy is a stream of typed events.

The engine emits these and nothing else; the CLI output, the TUI, the history store, the
per-deploy event log and the webhook notifier are all subscribers. Every event is a
frozen dataclass that round-trips through one JSON object per line (`to_json` /
`from_json`), so a console that attaches to a running deploy reads exactly what the
engine wrote. `from_json` checks each field against its declared type, so a damaged or
hand-edited line is refused as a whole rather than failing whoever reads it later.

Events carry no secrets and no control characters: every text field is made `clean` as
the event is made (control characters escaped, secrets as `***`, URLs cut to their host),
so nothing a host prints or a person types can forge a line of the event log, the history
or a webhook, whoever subscribes.
"""

from __future__ import annotations

import dataclasses
import json
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from console.core.text import clean, is_plain

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
    #: The text fields that hold several lines (a command's last lines of output).
    multiline: ClassVar[frozenset[str]] = frozenset()
    deploy_id: str
    ts: float = field(default_factory=_now, kw_only=True)

    def __post_init__(self) -> None:
        for name in _TEXT_FIELDS.get(type(self)) or _text_fields(type(self)):
            value = getattr(self, name)
            if not value or (type(value) is str and is_plain(value)):
                continue  # the common case, kept cheap: thousands of events a second
            cleaned = _cleaned(value, name in self.multiline)
            if cleaned is not value:
                object.__setattr__(self, name, cleaned)


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
    multiline: ClassVar[frozenset[str]] = frozenset({"output"})
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
    """One line of JSON with the event's kind and fields.

    The fields are read by name, not by `dataclasses.asdict`, which deep-copies every value
    (an event holds only strings, numbers and tuples of them): 10 µs an event instead of 27,
    some 20 events per host per deploy."""
    data: dict[str, Any] = {"event": event.kind}
    for name in _hints(type(event)):  # the fields, in order
        data[name] = getattr(event, name)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _cleaned(value: Any, newlines: bool) -> Any:
    """`value` with every string in it `clean` (the same object when nothing changed)."""
    if isinstance(value, str):
        return clean(value, newlines=newlines)
    if isinstance(value, tuple):
        items = tuple(_cleaned(v, newlines) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


_HINTS: dict[type, dict[str, Any]] = {}
_TEXT_FIELDS: dict[type, tuple[str, ...]] = {}


def _hints(cls: type[Event]) -> dict[str, Any]:
    """Each field's declared type, resolved (once per class)."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return _HINTS[cls]


def _text_fields(cls: type[Event]) -> tuple[str, ...]:
    """The fields that may hold text (a string, or tuples of strings)."""
    if cls not in _TEXT_FIELDS:
        _TEXT_FIELDS[cls] = tuple(name for name, hint in _hints(cls).items() if "str" in str(hint))
    return _TEXT_FIELDS[cls]


def _fits(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON (lists already tuples) has the declared type."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in args)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def from_json(line: str | dict[str, Any]) -> Event:
    """The event a `to_json` line describes; unknown fields are ignored (newer writers).
    A field of the wrong type (or a missing one) is a TypeError naming it."""
    data = json.loads(line) if isinstance(line, str) else dict(line)
    cls = EVENT_TYPES[data.pop("event")]
    hints = _hints(cls)
    values = {k: _tuples(v) for k, v in data.items() if k in hints}
    for name, value in values.items():
        if not _fits(value, hints[name]):
            hint = hints[name]
            expected = hint.__name__ if isinstance(hint, type) else str(hint)
            raise TypeError(f"field {name}: expected {expected}, got {str(value)[:40]!r}")
    return cls(**values)
