"""A host's live output: what each step ran and what it printed, as `HostOutput` events.

The live log (Shipit's and Deployinator's streamed deploy output) needs the output of every
command, not only the last lines of a failure. It is taken at the `Connection` seam, not
inside a transport: `Echo` wraps the run's connection to a host and reports each command,
its output (a stream's, line by line as it comes) and each rsync, whatever transport is
behind it. Before any line becomes an
event it is censored (`console.core.text.censor`: secret-looking values and the
inventory's webhook URLs) and made printable, and each host gets at most `LINES_PER_PHASE`
lines per phase: a chatty restart script cannot flood the event log or the console.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from console.core.events import HostOutput, Subscriber
from console.core.text import censor, printable
from console.fleet.connection import Connection, HostError, Result

#: Lines one host may log in one phase; past it, one line says how many were left out.
LINES_PER_PHASE = 200
#: Characters kept of one line.
LINE_WIDTH = 240
#: Commands (by their `what`) whose output is data the step reads, not for people: a
#: cleanup's survey lists every release's manifest, and a staging (console/fleet/remote.py
#: `stage`) brings one back. Only the first line and the size are logged.
DATA_COMMANDS = frozenset({"survey", "stage"})


class OutputLog:
    """One run's output lines, per host and phase, bounded and censored. Thread-safe: the
    fanout's threads report at once."""

    def __init__(self, deploy_id: str, emit: Subscriber, secrets: Iterable[str] = ()) -> None:
        self.deploy_id = deploy_id
        self.emit = emit
        self.secrets = tuple(s for s in secrets if s)
        self._hidden: dict[str, tuple[str, ...]] = {}
        self._lines: Counter[tuple[str, str]] = Counter()
        self._dropped: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def hide(self, host: str, values: Iterable[str]) -> None:
        """Censor `values` too from what `host` prints: secrets only that host was given (the
        tree's tokens), so a fleet's worth of them costs each line only its own host's."""
        self._hidden[host] = (*self._hidden.get(host, ()), *(v for v in values if v))

    def secrets_of(self, host: str) -> tuple[str, ...]:
        """What is censored from `host`'s output: the run's secrets and the host's own."""
        return self.secrets + self._hidden.get(host, ())

    def write(self, host: str, phase: str, lines: Iterable[str]) -> None:
        """Log `lines` of `host` in `phase` (one event), within the phase's budget."""
        secrets = self.secrets_of(host)
        clean = [printable(censor(line, secrets), LINE_WIDTH) for line in lines]
        key = (host, phase)
        with self._lock:
            room = max(0, LINES_PER_PHASE - self._lines[key])
            self._lines[key] += min(room, len(clean))
            self._dropped[key] += max(0, len(clean) - room)
            clean = clean[:room]
        if clean:
            self.emit(HostOutput(self.deploy_id, phase=phase, host=host, lines=tuple(clean)))

    def phase_done(self, host: str, phase: str) -> None:
        """Say how many lines of `host` in `phase` were left out, if any."""
        with self._lock:
            dropped = self._dropped.pop((host, phase), 0)
        if dropped:
            line = f"… {dropped} more lines not logged (at most {LINES_PER_PHASE} per host and phase)"
            self.emit(HostOutput(self.deploy_id, phase=phase, host=host, lines=(line,)))


class Echo:
    """A `Connection` that reports to an `OutputLog` what it runs and what comes back.

    `phase()` names the phase the host is in when a command runs (a host runs one step at
    a time). A failure's reason and output are censored here too, so `HostFailed`'s are."""

    def __init__(self, inner: Connection, log: OutputLog, host: str, phase: Callable[[], str]) -> None:
        self.inner = inner
        self.log = log
        self.host = host
        self.phase = phase

    def _write(self, lines: Iterable[str]) -> None:
        self.log.write(self.host, self.phase(), lines)

    def _failed(self, exc: HostError) -> None:
        secrets = self.log.secrets_of(self.host)
        exc.reason = censor(exc.reason, secrets)
        exc.output = censor(exc.output, secrets)
        self._write([*exc.output.splitlines(), f"✘ {exc.reason}"])

    def run(
        self, command: str, *, timeout: float | None = None, what: str = "", stdin: str | bytes | None = None
    ) -> Result:
        self._write([f"$ {command}"])
        try:
            result = self.inner.run(command, timeout=timeout, what=what, stdin=stdin)
        except HostError as exc:
            self._failed(exc)
            raise
        lines = [*result.stdout.splitlines(), *result.stderr.splitlines()]
        if what in DATA_COMMANDS:  # the first line is the answer's own; the rest is data
            lines = [*lines[:1], f"({len(lines) - 1} more lines read)"] if len(lines) > 1 else lines
        self._write(lines)
        return result

    def stream(
        self,
        command: str,
        *,
        timeout: float | None = None,
        what: str = "",
        feed: Iterable[bytes] = (),
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        lines = command.count("\n") + 1
        self._write([f"$ {command}" if lines == 1 else f"$ ({what or 'script'}: {lines} lines of sh)"])

        def line(text: str) -> None:
            self._write([text])
            if on_line is not None:
                on_line(text)

        try:
            result = self.inner.stream(command, timeout=timeout, what=what, feed=feed, on_line=line)
        except HostError as exc:
            self._failed(exc)
            raise
        self._write(result.stderr.splitlines())
        return result

    def rsync(self, source: Path, dest: str, options: Sequence[str] = (), *, timeout: float | None = None) -> int:
        self._write([f"$ rsync {' '.join(options)} …/{source.parent.name}/{source.name}/ → {dest}"])
        try:
            sent = self.inner.rsync(source, dest, options, timeout=timeout)
        except HostError as exc:
            self._failed(exc)
            raise
        self._write([f"{sent} bytes sent"])
        return sent

    def close(self) -> None:
        self.inner.close()
