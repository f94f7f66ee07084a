"""What the command line prints about a deploy: live lines, then a summary table.

`LivePrinter` is a subscriber: a line when a phase ends (with counts and time), failures
the moment they happen, notices, and at the end the summary: hosts ok, hosts failed with
their reasons, time per phase, and a clear final state line. `summary(view)` renders the
same table from a `DeployView`, so `invoke status` and the live output agree. Whatever came
from a host or a person (a failure's reason, a notice, a user name) is printed `printable`.
"""

from __future__ import annotations

import sys
from typing import TextIO

from console.core.events import (
    DeployDone,
    DeployStarted,
    Event,
    HostFailed,
    Notice,
    PhaseDone,
    WatchVerdict,
)
from console.core.progress import HOST_STATES, DeployView
from console.core.text import printable, short


def headline(started: DeployStarted) -> str:
    s = started
    chunks = len(s.chunks)
    what = (
        f"switch to release {s.release}"
        if s.action == "switch"
        else f"deploy {short(s.previous_revision, 'nothing')}..{short(s.revision, 'nothing')}"
    )
    return (
        f"{s.environment}: {printable(s.user, 64)} started {what} ({s.commits} commits) on {len(s.hosts)} hosts, "
        f"{chunks} chunk{'s' if chunks != 1 else ''}{', rolling' if s.rolling else ''}  [{s.deploy_id}]"
    )


def summary(view: DeployView, *, notices: bool = False) -> str:
    """The end-of-deploy table (or where a running deploy stands); `notices`: with the
    warnings and errors of the run (what `invoke status` shows; a live printer has
    printed them as they came)."""
    lines: list[str] = []
    if view.started:
        lines.append(headline(view.started))
    lines.append(f"  {'phase':<12} {'ok':>5} {'failed':>7} {'seconds':>8}")
    for phase in view.phases.values():
        if phase.skipped:
            lines.append(f"  {phase.name:<12} skipped: {phase.skipped}")
        elif phase.state == "pending":
            lines.append(f"  {phase.name:<12} {'-':>5} {'-':>7} {'-':>8}")
        else:
            secs = f"{phase.seconds:.2f}" if phase.state == "done" else "running"
            lines.append(f"  {phase.name:<12} {phase.ok:>5} {phase.failed:>7} {secs:>8}")
    counts = view.counts()
    lines.append("  hosts: " + ", ".join(f"{counts[s]} {s}" for s in HOST_STATES if counts[s]))
    for name, reason in sorted(view.failed_hosts().items()):
        lines.append(f"  FAILED {name}: {printable(reason)}")
    if notices:
        for notice in view.notices:
            if notice.level != "info":
                lines.append(f"  {printable(notice.level, 10)}: {printable(notice.message, 400)}")
    for verdict in view.verdicts.values():
        lines.append(f"  watch {printable(verdict.metric, 60)}: {verdict.verdict}: {printable(verdict.summary)}")
    if view.done:
        d = view.done
        tail = f": {printable(d.message, 400)}" if d.message else ""
        lines.append(
            f"done: {d.result.upper()} in {d.seconds:.1f} s, {len(d.hosts_ok)} hosts ok, "
            f"{len(d.hosts_failed)} failed{tail}"
        )
    else:
        lines.append("still running")
    return "\n".join(lines)


class LivePrinter:
    """Prints a deploy as it happens; ends with the summary."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.view = DeployView()

    def __call__(self, event: Event) -> None:
        self.view.apply(event)
        line = self._line(event)
        if line:
            print(line, file=self.out, flush=True)

    def _line(self, event: Event) -> str:
        if isinstance(event, DeployStarted):
            return headline(event)
        if isinstance(event, HostFailed):
            return f"  FAILED {event.host} in {event.phase}: {printable(event.reason)}"
        if isinstance(event, PhaseDone):
            if event.skipped:
                return f"  {event.phase:<12} skipped: {event.skipped}"
            failed = f", {event.failed} failed" if event.failed else ""
            return f"  {event.phase:<12} {event.ok} ok{failed} in {event.seconds:.2f} s"
        if isinstance(event, Notice):
            return f"  {printable(event.level, 10)}: {printable(event.message, 400)}"
        if isinstance(event, WatchVerdict):
            dry = " (dry run)" if event.dry_run else ""
            return f"  watch {printable(event.metric, 60)}: {printable(event.verdict, 20)}: {printable(event.summary)}{dry}"
        if isinstance(event, DeployDone):
            return summary(self.view)
        return ""
