"""Where the deploy shown stands, as the header and the fleet pane both say it: the phase
running, chunk i of n, the time since it started (ticking), how long it has left, and once
it ended, its result, never "in progress".

How long it has left comes from this environment's past deploys, as Deployinator's timing
log sized its progress bar to the average deploy: `Timing` is the median seconds of each
phase over the last finished deploys (the history keeps each deploy's seconds per phase),
and a running deploy has left what its phases not yet done took, less the share of the
running phase's hosts that are through it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rich.text import Text

from console.core.events import LOCAL_PHASES, DeployDone, DeployStarted
from console.core.progress import HostView, PhaseView
from console.core.text import printable
from console.service import DeployRecord
from console.tui.format import duration, estimate
from console.tui.theme import Palette

#: Past deploys the timing is taken from, at most.
TIMING_DEPLOYS = 10


@dataclass(frozen=True)
class Timing:
    """Median seconds per phase over this environment's last finished deploys."""

    phases: Mapping[str, float]
    deploys: int

    @classmethod
    def of(cls, records: Iterable[DeployRecord], action: str = "deploy") -> Timing | None:
        """From the history (newest first): deploys of `action` that reached hosts."""
        past = [r for r in records if r.action == action and r.result in ("ok", "partial") and r.phases]
        past = past[:TIMING_DEPLOYS]
        if not past:
            return None
        names = {p for r in past for p in r.phases}
        return cls({p: statistics.median(r.phases[p] for r in past if p in r.phases) for p in names}, len(past))

    def remaining(self, phases: Mapping[str, PhaseView], done: Mapping[str, int]) -> float:
        """Seconds a deploy at this point has left, by the medians."""
        left = 0.0
        for name, typical in self.phases.items():
            phase = phases.get(name)
            if phase is None or phase.skipped:
                continue
            if phase.state == "done":
                continue
            if phase.state == "running" and name not in LOCAL_PHASES and phase.hosts:
                left += typical * (1 - min(1.0, done.get(name, 0) / phase.hosts))
            else:
                left += typical
        return left


def current_chunk(chunks: Sequence[Sequence[str]], hosts: Mapping[str, HostView], phase: str) -> int:
    """Which chunk (1-based) `phase` is working through: the first with a host not yet
    through it (failed hosts are through); 0 when the phase has none of its own."""
    if phase in LOCAL_PHASES or not chunks:
        return 0
    for i, chunk in enumerate(chunks, 1):
        for name in chunk:
            host = hosts.get(name)
            if host is None or (phase not in host.seconds and host.state != "failed"):
                return i
    return len(chunks)


@dataclass(frozen=True)
class DeployStatus:
    """The deploy shown, at one moment."""

    deploy_id: str
    started: DeployStarted | None
    done: DeployDone | None
    running: tuple[str, ...]  # the phases running now
    chunk: int  # 1-based chunk of the running host phase, 0 when none
    left: float | None  # seconds left by the timing, None without one
    timing: Timing | None
    last_ts: float  # the newest event's time

    @property
    def finished(self) -> bool:
        return self.done is not None

    def elapsed(self, now: float) -> float:
        """Seconds since it started: ticking while it runs, its own total once it ended."""
        if self.done is not None:
            return self.done.seconds
        if self.started is None:
            return 0.0
        return max(0.0, now - self.started.ts, self.last_ts - self.started.ts)

    def eta(self, now: float) -> float | None:
        """Seconds left from now (the timing's estimate, counted down since the last event)."""
        if self.left is None or self.done is not None:
            return None
        return max(0.0, self.left - max(0.0, now - self.last_ts))

    def text(self, now: float, colors: Palette) -> Text:
        """`running restart · chunk 30 of 50 · 1m 34s · about 13s left`, or once it ended
        `failed in 9.0s: no host was switched …`: what the header and the fleet pane say."""
        text = Text(no_wrap=True, overflow="ellipsis")
        d = self.done
        if d is not None:
            result = {"ok": colors.ok, "partial": colors.caution}.get(d.result, colors.failed)
            text.append(d.result, style=f"bold {result}")
            text.append(f" in {duration(d.seconds)}")
            if d.message:
                text.append(f": {printable(d.message, 120)}", style=result)
            return text
        if self.started is None:
            text.append("waiting for the deploy to start", style="italic")
            return text
        text.append("running ", style=f"bold {colors.running}")
        text.append(", ".join(self.running) or "…", style=f"bold {colors.running}")
        if self.chunk:
            text.append(f" · chunk {self.chunk} of {len(self.started.chunks)}")
        text.append(f" · {duration(self.elapsed(now))}")
        eta = self.eta(now)
        if eta is not None and self.timing is not None:
            left = f"{estimate(eta)} left" if eta > 0 else "longer than usual"
            text.append(f" · {left}", style=colors.commit)
            past = "1 past deploy" if self.timing.deploys == 1 else f"{self.timing.deploys} past deploys"
            text.append(f" (by {past})", style="dim")
        return text
