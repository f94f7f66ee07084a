"""What the console needs from the engine: the `ConsoleService` protocol.

The real service (`console.service`) is Textual-free and blocking; the console calls
every method from a `@work(thread=True)` worker, never from the event loop. Domain
objects (changes, previews, deploy records, lock info) are used by attribute only, so
a test double made of small dataclasses works as well as the engine's own classes.

Every method may raise `console.core.errors.ConsoleError` with a one-line message; the
console shows that line as a notification.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from console.config.inventory import KeyMetric
from console.core.events import Event, WatchVerdict

# Attribute-level shapes, for readers (the engine's classes carry at least these names):
#   Change:       sha, short, author, email, time, subject, files, approved, reviewers, ddl, merge
#   DdlHit:       file, line, text, why
#   Preview:      target, commits, refusals, hosts, chunks, chunk_size, strategy, rolling,
#                 allowed_failures
#   DeployRecord: id, action, user, previous_revision, revision, started, ended, result,
#                 message, commits (and, when known, verdict)
#   LockInfo:     who, reason, since, pid, stale
Change = Any
Preview = Any
DeployRecord = Any
LockInfo = Any


@runtime_checkable
class ConsoleService(Protocol):
    """One environment's deploy engine, as the console sees it. Every call blocks."""

    environment: str
    host_names: tuple[str, ...]
    key_metrics: tuple[KeyMetric, ...]

    def live_revision(self) -> str | None:
        """The commit the fleet serves now, or None before the first deploy."""

    def queue(self) -> list[Change]:
        """Undeployed commits on trunk, oldest first."""

    def preview(self, sha: str) -> Preview:
        """The plan a deploy of `sha` would run, and what it would refuse."""

    def start_deploy(self, sha: str, override: str | None = None) -> str:
        """Start a detached deploy of `sha`; returns its deploy id."""

    def running_deploy(self) -> str | None:
        """The id of a deploy running now (started anywhere), or None."""

    def follow(self, deploy_id: str, stop: threading.Event) -> Iterator[Event]:
        """Every event of a deploy from its start, then live; ends after DeployDone or `stop`."""

    def events(self, deploy_id: str) -> list[Event]:
        """Every event a deploy has written so far."""

    def history(self, limit: int = 50) -> list[DeployRecord]:
        """Past deploys, newest first."""

    def lock_status(self) -> LockInfo | None:
        """Who holds the deploy lock and why, or None."""

    def take_lock(self, reason: str) -> None:
        """Take the deploy lock with a reason."""

    def release_lock(self) -> None:
        """Release the deploy lock."""

    def metric_series(
        self, metric: KeyMetric, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]]:
        """Samples of a key metric, one per `step` seconds."""

    def markers(self, since: float) -> list[tuple[float, str]]:
        """Deploy start and end times since `since`, with a label."""

    def verdicts(self, deploy_id: str) -> list[WatchVerdict]:
        """The watch verdicts of a deploy, oldest first."""


def ago(seconds: float) -> str:
    """`42s`, `5m`, `3h`, `2d`: how long ago, compactly."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float | None) -> str:
    """`1m 52s` or `9.3s`."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def human_bytes(n: int) -> str:
    """`0 B`, `12.3 KB`, `4.5 MB`."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
