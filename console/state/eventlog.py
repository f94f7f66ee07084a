"""The per-deploy event log: every event of a deploy, one JSON line each.

`state_dir/deploys/<deploy_id>.jsonl`, written by the deploy process and read by any
number of consoles and `invoke status --follow`, on the same deploy host.

Writing: the file is opened O_APPEND, private (0600), and each event is one `write()`
of one whole line including its newline, straight to the kernel (no user-space buffer),
so a SIGKILL at any instant loses at most the event being written, never a line in the
middle; concurrent writer threads never interleave within a line.

Reading: a last line without its newline is a line still being written; readers wait
for the newline (`follow`) or leave it out (`read`). A line that is not a valid event (a
hand edit, a torn line after a full disk, a kind this version does not know) is not
fatal: it is replaced by a `Notice(level="warning")` that names the file and line
number, so the reader keeps going and the person sees exactly what was skipped.

`follow` ends on `DeployDone`, or when the process named in `DeployStarted.pid` is gone
without one; then it yields a final `Notice(level="error", message="the deploy process
<pid> died without finishing")`, so a live log always finishes with a clear done state.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from console.core.errors import ConsoleError
from console.core.events import EVENT_TYPES, DeployDone, DeployStarted, Event, Notice, from_json, to_json
from console.state.files import pid_alive, private_dir

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]*\Z")
_CHUNK = 1 << 16


def died_notice(deploy_id: str, pid: int) -> Notice:
    """The synthetic last event of a deploy whose process died without DeployDone."""
    return Notice(deploy_id, message=f"the deploy process {pid} died without finishing", level="error")


class LogWriter:
    """A subscriber that appends each event to one deploy's log (see module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = (to_json(event) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                except OSError as exc:
                    raise ConsoleError(f"{self.path}: cannot open the event log: {exc.strerror}") from None
            try:
                written = os.write(self._fd, line)
                while written < len(line):  # only after a signal or a full disk
                    written += os.write(self._fd, line[written:])
            except OSError as exc:
                raise ConsoleError(f"{self.path}: cannot write the event log: {exc.strerror}") from None
            if isinstance(event, DeployDone):
                os.fsync(self._fd)

    def close(self) -> None:
        """Close the file; a later event opens it again."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


class EventLog:
    """The event logs of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "deploys"
        self._scan: _Scan | None = None  # how far `running` has read the last deploy it was asked about
        self._scan_lock = threading.Lock()

    def path(self, deploy_id: str) -> Path:
        if not _ID.match(deploy_id):
            raise ConsoleError(f"bad deploy id {deploy_id!r}: expected letters, digits, '.', '_', ':', '+' or '-'")
        return self.dir / f"{deploy_id}.jsonl"

    def writer(self, deploy_id: str) -> LogWriter:
        """A subscriber appending to this deploy's log (created private)."""
        private_dir(self.state_dir)
        private_dir(self.dir)
        return LogWriter(self.path(deploy_id))

    # -- reading -------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Every deploy id with a log, oldest first (ids sort by time)."""
        try:
            return sorted(p.name[: -len(".jsonl")] for p in self.dir.glob("*.jsonl"))
        except OSError:
            return []

    def latest(self) -> str | None:
        """The newest deploy id with a log, or None."""
        ids = self.ids()
        return ids[-1] if ids else None

    def read(self, deploy_id: str) -> list[Event]:
        """Every complete event so far (bad lines become warning notices)."""
        path = self.path(deploy_id)
        data = _read_from(path, deploy_id, 0) or b""
        parser = _Parser(path, deploy_id)
        return list(parser.feed(data))

    def running(self, deploy_id: str) -> bool:
        """Whether the deploy has started, has not finished, and its process is alive.

        A console asks this every few seconds. A log only grows, so each call reads only
        what was written since the last one (parsing a whole 20-host deploy's log took
        10 ms of the console's interpreter, in the middle of the person's keys)."""
        path = self.path(deploy_id)
        with self._scan_lock:
            scan = self._scan
            if scan is None or scan.parser.deploy_id != deploy_id:
                scan = self._scan = _Scan(_Parser(path, deploy_id))
            data = _read_from(path, deploy_id, scan.offset)
            if data is None:  # shorter than what was read: not the log it was, read it afresh
                scan = self._scan = _Scan(_Parser(path, deploy_id))
                data = _read_from(path, deploy_id, 0) or b""
            scan.offset += len(data)
            for event in scan.parser.feed(data):
                if isinstance(event, DeployStarted):
                    scan.started = event
                elif isinstance(event, DeployDone):
                    scan.done = True
            started, done = scan.started, scan.done
        return started is not None and not done and pid_alive(started.pid)

    def follow(self, deploy_id: str, *, poll: float = 0.1, stop: threading.Event | None = None) -> Iterator[Event]:
        """Every event from the start, then new ones as they are written, until
        DeployDone, the writer's death (a final error Notice), or `stop` is set.

        A log with no DeployStarted yet (or one with pid 0) is waited on until `stop`:
        without a process to watch, only DeployDone or `stop` can end it."""
        path = self.path(deploy_id)
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the `with f:` below, after the error handling
        except FileNotFoundError:
            raise ConsoleError(f"{path}: no event log for deploy {deploy_id}") from None
        except OSError as exc:
            raise ConsoleError(f"{path}: cannot read the event log: {exc.strerror}") from None
        stop = stop or threading.Event()
        parser = _Parser(path, deploy_id)
        pid = 0
        with f:
            while True:
                data = f.read(_CHUNK)
                if data:
                    for event in parser.feed(data):
                        if isinstance(event, DeployStarted):
                            pid = event.pid
                        yield event
                        if isinstance(event, DeployDone):
                            return
                    continue
                # At the end of what is written: is anyone still writing?
                if pid > 0 and not pid_alive(pid):
                    rest = f.read()  # lines written just before it died
                    if rest:
                        for event in parser.feed(rest):
                            yield event
                            if isinstance(event, DeployDone):
                                return
                    yield died_notice(deploy_id, pid)
                    return
                if stop.wait(poll):
                    return


def _read_from(path: Path, deploy_id: str, offset: int) -> bytes | None:
    """The log's bytes from `offset` on; None if it is shorter than `offset`."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < offset:
                return None
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        raise ConsoleError(f"{path}: no event log for deploy {deploy_id}") from None
    except OSError as exc:
        raise ConsoleError(f"{path}: cannot read the event log: {exc.strerror}") from None


class _Scan:
    """What `EventLog.running` has read of one deploy's log so far."""

    def __init__(self, parser: _Parser) -> None:
        self.parser = parser
        self.offset = 0  # bytes read (an unfinished last line waits in the parser)
        self.started: DeployStarted | None = None
        self.done = False


class _Parser:
    """Splits bytes into lines, keeps an unfinished last line, turns lines into events."""

    def __init__(self, path: Path, deploy_id: str) -> None:
        self.path = path
        self.deploy_id = deploy_id
        self.buffer = b""
        self.line = 0
        self.last_ts: float | None = None

    def feed(self, data: bytes) -> Iterator[Event]:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            self.line += 1
            if not raw.strip():
                continue
            event = self._event(raw)
            self.last_ts = event.ts
            yield event

    def _event(self, raw: bytes) -> Event:
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                problem = "not a JSON object"
            elif data.get("event") not in EVENT_TYPES:
                problem = f"unknown event kind {data.get('event')!r}"
            else:
                return from_json(data)
        except (ValueError, TypeError) as exc:  # bad UTF-8 or JSON, missing fields
            problem = f"not a deploy event ({type(exc).__name__}: {str(exc)[:80]})"
        kw = {} if self.last_ts is None else {"ts": self.last_ts}
        return Notice(
            self.deploy_id, message=f"{self.path}:{self.line}: skipped a line: {problem}", level="warning", **kw
        )
