"""One deploy per environment at a time: a lock that says who, why, since when, and which process.

Like Deployinator's per-stack lock file `who|what|when`, plus the reason and the process.
The lock is `state_dir/lock-<environment>.json`, a complete JSON object or nothing:

- `acquire` writes the JSON to a private temporary file and hard-links it to the lock
  name (`link()` fails if the name exists), so two processes racing get exactly one
  winner, and a SIGKILL at any instant leaves either no lock or a whole one.
- `update` and `release` rename or unlink under an `flock` on `lock-<environment>.guard`,
  so a release can never remove a lock that someone else took a moment ago. The kernel
  drops an flock when its process dies, so a killed process never leaves it held.
- A lock with a pid belongs to a process on `hostname`. If that host is this one and the
  process is gone (or a zombie), the lock is *stale*: it still stops deploys, and the
  error says how to take it over (`invoke unlock --force`). A lock without a pid is held
  on purpose (`invoke lock --reason ...`) and stops deploys and automation until released.
- Every lock action goes into the history's audit log; a forced release says whose lock
  it removed and why it needed force. The lock opens the history (SQLite) at its first
  audit entry and reuses it: reading a lock (`invoke status`, the console) needs none.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.core.errors import ConsoleError
from console.core.text import check_line, local_time, printable
from console.state.files import pid_alive, private_dir

if TYPE_CHECKING:
    from console.state.history import History

__all__ = ["Lock", "LockInfo"]

#: Seconds to wait for the guard flock that serialises lock changes (normally free).
GUARD_WAIT = 5.0


@dataclass(frozen=True)
class LockInfo:
    """Who holds an environment, why, since when (epoch seconds), and which process."""

    who: str
    reason: str
    since: float
    pid: int | None = None
    hostname: str = ""
    deploy_id: str | None = None
    stale: bool = False

    @property
    def held_on_purpose(self) -> bool:
        """Held by a person (`invoke lock`), not by a running deploy."""
        return self.pid is None

    def describe(self) -> str:
        """One line: `locked by alice since 2026-01-02 10:15:00: hotfix`, or the stale form
        (who and why printable: the file may have been edited by hand)."""
        when, who, reason = local_time(self.since), printable(self.who, 64), printable(self.reason)
        if self.stale:
            gone = f"process {self.pid} is gone" if self.pid else "the lock file is unreadable"
            return f"stale lock held by {who} since {when} ({gone}): {reason}; take it over with invoke unlock --force"
        return f"locked by {who} since {when}: {reason}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": local_time(self.since)}


class Lock:
    """The deploy lock of one environment in one state directory.

    `audit`: the history its actions are written to (one is opened at the first action
    when not given, then reused)."""

    def __init__(self, state_dir: Path, environment: str, *, audit: History | None = None) -> None:
        if not environment or "/" in environment or environment.startswith("."):
            raise ConsoleError(f"bad environment name for a lock: {environment!r}")
        self.state_dir = Path(state_dir)
        self.environment = environment
        self.path = self.state_dir / f"lock-{environment}.json"
        self._guard = self.state_dir / f"lock-{environment}.guard"
        self._history = audit

    # -- reading -------------------------------------------------------------------

    def status(self) -> LockInfo | None:
        """The lock as it is now, or None when the environment is free."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConsoleError(f"{self.path}: cannot read the lock: {exc.strerror}") from None
        return self._parse(raw)

    def _parse(self, raw: bytes) -> LockInfo:
        try:
            data = json.loads(raw)
            pid = data.get("pid")
            hostname = str(data.get("hostname") or "")
            since = float(data["since"])
            if not 0 <= since < 1e11:  # a time no clock shows (1e300, nan): edited by hand
                raise ValueError(since)
            stale = pid is not None and hostname == socket.gethostname() and not pid_alive(int(pid))
            return LockInfo(
                who=str(data["who"]),
                reason=str(data.get("reason", "")),
                since=since,
                pid=None if pid is None else int(pid),
                hostname=hostname,
                deploy_id=data.get("deploy_id"),
                stale=stale,
            )
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
            # Never written by acquire() (it links only complete files): edited by hand.
            try:
                since = self.path.stat().st_mtime
            except OSError:
                since = time.time()
            return LockInfo("unknown", f"unreadable lock file {self.path}", since, stale=True)

    # -- changing --------------------------------------------------------------------

    def acquire(self, who: str, reason: str, *, deploy_id: str | None = None, pid: int | None = None) -> LockInfo:
        """Take the lock or fail at once with ConsoleError naming its holder. `who` and
        `reason` are one line each (they go into the lock file and the audit log)."""
        if not reason.strip():
            raise ConsoleError("a lock needs a reason (who else wants to know why)")
        check_line(who, "lock holder")
        check_line(reason, "lock reason", limit=500)
        with self._guarded():
            held = self.status()
            if held is not None:
                raise ConsoleError(f"{self.environment}: {held.describe()}")
            info = LockInfo(
                who=who,
                reason=reason,
                since=time.time(),
                pid=pid,
                hostname=socket.gethostname() if pid is not None else "",
                deploy_id=deploy_id,
            )
            tmp = self._write_tmp(info)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                held = self.status()
                what = held.describe() if held else "the lock was taken a moment ago"
                raise ConsoleError(f"{self.environment}: {what}") from None
            except OSError as exc:
                raise ConsoleError(f"{self.path}: cannot create the lock: {exc.strerror}") from None
            finally:
                tmp.unlink(missing_ok=True)
        detail = reason + (f" (deploy {deploy_id})" if deploy_id else "") + (f" (process {pid})" if pid else "")
        self._audit(who, "lock", detail)
        return info

    def update(self, *, deploy_id: str | None = None, pid: int | None = None) -> LockInfo:
        """Move a deploy's lock to another process (the detached child takes over the
        lock its starter acquired). The lock must exist and, if it names a deploy, name
        this one; a lock held on purpose (no pid) is never taken over this way."""
        with self._guarded():
            held = self.status()
            if held is None:
                raise ConsoleError(f"{self.environment}: not locked; nothing to update")
            if held.pid is None or (held.deploy_id and deploy_id and held.deploy_id != deploy_id):
                raise ConsoleError(f"{self.environment}: {held.describe()}")
            info = LockInfo(
                who=held.who,
                reason=held.reason,
                since=held.since,
                pid=held.pid if pid is None else pid,
                hostname=socket.gethostname() if pid is not None else held.hostname,
                deploy_id=deploy_id or held.deploy_id,
            )
            tmp = self._write_tmp(info)
            try:
                os.replace(tmp, self.path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise ConsoleError(f"{self.path}: cannot update the lock: {exc.strerror}") from None
        return info

    def release(self, who: str, *, force: bool = False, pid: int | None = None) -> LockInfo | None:
        """Release the lock; returns what was released, or None if it was free.

        Releasing someone else's lock, or a lock whose process is alive (and is not this
        process), needs `force`; every forced release goes into the audit log.
        With `pid`, release only a lock held by that process and otherwise leave the lock
        alone (return None): what a deploy does at its end, so that it can never remove a
        lock someone took after forcing its own away."""
        with self._guarded():
            held = self.status()
            if held is None or (pid is not None and held.pid != pid):
                return None
            why = self._needs_force(held, who)
            if why and not force and held.stale:
                raise ConsoleError(f"{self.environment}: {held.describe()}")
            if why and not force:
                raise ConsoleError(
                    f"{self.environment}: {held.describe()}; {why}: release it with invoke unlock --force"
                )
            try:
                self.path.unlink()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise ConsoleError(f"{self.path}: cannot remove the lock: {exc.strerror}") from None
        if why:
            state = "stale, " if held.stale else ""
            process = f"process {held.pid} on {held.hostname}, " if held.pid else ""
            deploy = f"deploy {held.deploy_id}, " if held.deploy_id else ""
            detail = (
                f"took over the lock of {held.who} since {local_time(held.since)} "
                f"({state}{process}{deploy}reason: {held.reason}); {why}"
            )
            self._audit(who, "force-unlock", detail)
        else:
            self._audit(who, "unlock", held.reason)
        return held

    @staticmethod
    def _needs_force(held: LockInfo, who: str) -> str:
        if held.who != who:
            return f"it is {held.who}'s lock"
        if held.pid is not None and held.pid != os.getpid() and not held.stale:
            if held.hostname != socket.gethostname():
                return f"its process {held.pid} runs on {held.hostname or 'another host'}"
            return f"its process {held.pid} is still running"
        return ""

    # -- plumbing --------------------------------------------------------------------

    def _write_tmp(self, info: LockInfo) -> Path:
        data = {k: v for k, v in asdict(info).items() if k != "stale"}
        raw = (json.dumps(data, ensure_ascii=False) + "\n").encode()
        tmp = self.state_dir / f".lock-{self.environment}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, raw)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConsoleError(f"{tmp}: cannot write the lock: {exc.strerror}") from None
        return tmp

    def _sweep_tmp(self) -> None:
        """Remove temporary files left by processes killed between write and link."""
        for tmp in self.state_dir.glob(f".lock-{self.environment}.*.tmp"):
            try:
                pid = int(tmp.name.split(".")[2])
            except (IndexError, ValueError):
                continue
            if not pid_alive(pid):
                tmp.unlink(missing_ok=True)

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        private_dir(self.state_dir)
        try:
            fd = os.open(self._guard, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConsoleError(f"{self._guard}: cannot open the lock guard: {exc.strerror}") from None
        try:
            # Held for microseconds, and dropped by the kernel if its holder dies; only a
            # stopped (SIGSTOP) holder could keep it, and then we say so instead of hanging.
            deadline = time.monotonic() + GUARD_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ConsoleError(
                            f"{self._guard}: another process has been changing the lock for {GUARD_WAIT:g} s; "
                            "is a deploy process stopped?"
                        ) from None
                    time.sleep(0.005)
            self._sweep_tmp()
            yield
        finally:
            os.close(fd)

    def _audit(self, who: str, action: str, detail: str) -> None:
        if self._history is None:
            # Imported at the first audit entry, not with the module: SQLite and the deploy
            # records are not needed to read a lock.
            from console.state.history import History

            self._history = History(self.state_dir)
        self._history.add_audit(self.environment, who, action, detail)
