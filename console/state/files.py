"""Files in the state directory: private to the deploying user, and the liveness of the
processes that hold them.

The state directory is shared by every operator and every process on one deploy host
(history, lock, event logs, builds, handoff files). Everything in it is 0700 / 0600
whatever the umask, because it names hosts, users and what they deployed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from console.core.errors import ConsoleError


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700 if it is ours; returns it."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError as exc:
        raise ConsoleError(f"{path}: cannot create the state directory: {exc.strerror}") from None
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty if missing, mode 0600 whatever the umask; returns it.

    An existing file is never opened: closing any descriptor of a SQLite database drops
    every POSIX lock this process holds on it, those of its open connections included,
    and that corrupts a WAL database (sqlite.org/howtocorrupt.html, 2.2).
    """
    try:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            st = os.stat(path)
            if st.st_mode & 0o077 and st.st_uid == os.getuid():
                os.chmod(path, 0o600)
    except OSError as exc:
        raise ConsoleError(f"{path}: cannot create a state file: {exc.strerror}") from None
    return path


def write_private(path: Path, text: str) -> Path:
    """Replace `path` with `text` at once (a reader sees the old file or the whole new
    one, never a half-written one), mode 0600; returns it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConsoleError(f"{path}: cannot write a state file: {exc.strerror}") from None
    return path


def open_private(path: Path) -> int:
    """A descriptor of `path` opened for appending, created 0600 if missing (an output file)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConsoleError(f"{path}: cannot create a state file: {exc.strerror}") from None


def private_tree(root: Path) -> None:
    """Make every directory under `root` 0700 and every file 0600 (0700 when its owner may
    run it): what a build or an export leaves with the modes of its archive."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, 0o700 if mode & stat.S_IXUSR else 0o600)


def pid_alive(pid: int | None) -> bool:
    """Whether process `pid` exists on this host and is not a zombie (killed, not reaped)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split(" ", 1)[0] not in ("Z", "X")
