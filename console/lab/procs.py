"""Processes: running commands with one-line errors, and finding, signalling and reaping a host's processes.

A process that has exited but was never reaped (a zombie) counts as gone: on machines whose
PID 1 does not reap orphans, a killed sshd stays a zombie forever, holding nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence

from console.core.errors import ConsoleError


def run(
    argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure becomes a ConsoleError naming the command and its last error line."""
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ConsoleError(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ConsoleError(f"{' '.join(argv[:3])} did not finish within {timeout:g} s") from None
    if check and proc.returncode != 0:
        raise ConsoleError(
            f"{' '.join(argv[:3])} failed (exit {proc.returncode}): {last_line(proc.stderr or proc.stdout)}"
        )
    return proc


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: the state follows the last ')'.
    return data[data.rindex(")") + 2 :].split()


def is_alive(pid: int) -> bool:
    """True if `pid` runs (or is stopped); False if it is gone or a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return [p for p in found if is_alive(p)]


def pids_in_netns(netns_files: Iterable[str]) -> dict[str, list[int]]:
    """Live processes per network namespace file (what `ip netns pids` does, for many at once)."""
    wanted: dict[tuple[int, int], str] = {}
    for path in netns_files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        wanted[(st.st_dev, st.st_ino)] = path
    found: dict[str, list[int]] = {path: [] for path in wanted.values()}
    if not wanted:
        return found
    for pid in all_pids():
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        owner = wanted.get((st.st_dev, st.st_ino))
        if owner is not None and is_alive(pid):
            found[owner].append(pid)
    return found


def pids_with_cmdline(fragment: str) -> list[int]:
    """Live processes whose command line contains `fragment` (finds sshd listeners by their config path)."""
    needle = fragment.encode()
    me = os.getpid()
    out = []
    for pid in all_pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if needle in cmd and is_alive(pid):
            out.append(pid)
    return out


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_and_wait(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL every pid and wait until each is gone or a zombie; return those still alive."""
    pids = list(pids)
    signal_all(pids, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    left = [p for p in pids if is_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = [p for p in left if is_alive(p)]
    return left


def read_pid(path: str | os.PathLike) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
