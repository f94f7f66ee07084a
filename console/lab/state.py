"""A lab's record on disk (`<lab dir>/lab.json`), and the lock that hands out slots.

Everything `down`, `status` and the fault verbs need is in this file, so they work from any
process, also after the one that made the lab is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from console.core.errors import ConsoleError
from console.lab import layout
from console.lab.layout import HostSpec


@dataclass
class Faults:
    """The faults applied to one host (what `heal` undoes)."""

    cut: bool = False
    filled: bool = False
    slow: str | None = None
    rekeyed: bool = False
    modes: dict[str, int] = field(default_factory=dict)
    """Non-root fill: the original modes of the directories made read-only."""


@dataclass
class LabState:
    name: str
    slot: int
    netns: bool
    """True: root mode (network and mount namespaces); False: sshd processes on 127.0.0.1."""
    uid: int
    user: str
    hosts: list[HostSpec]
    rate: str | None = None
    inventory: str | None = None
    faults: dict[str, Faults] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return layout.lab_dir(self.name)

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        names = f"{self.hosts[0].name}..{self.hosts[-1].name}" if self.hosts else "none"
        raise ConsoleError(f"lab {self.name!r} has no host {name!r} (hosts: {names})")

    def faults_of(self, host: str) -> Faults:
        return self.faults.setdefault(host, Faults())

    def save(self) -> None:
        data = asdict(self)
        path = self.dir / "lab.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)


def state_path(name: str) -> Path:
    return layout.lab_dir(name) / "lab.json"


def load(name: str) -> LabState | None:
    """The lab's state, or None if there is no (readable) state file."""
    try:
        data = json.loads(state_path(name).read_text())
        hosts = [HostSpec(**h) for h in data.pop("hosts")]
        faults = {k: Faults(**v) for k, v in data.pop("faults", {}).items()}
        return LabState(hosts=hosts, faults=faults, **data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def require(name: str) -> LabState:
    state = load(name)
    if state is None:
        raise ConsoleError(f"lab {name!r} is not up (start it with: invoke lab.up --name {name})")
    return state


def ensure_root_dir() -> None:
    """/tmp/deploy-console-labs, world-writable and sticky so every user can make labs."""
    try:
        layout.LAB_ROOT.mkdir(mode=0o1777, exist_ok=True)
        if layout.LAB_ROOT.stat().st_uid == os.geteuid():
            os.chmod(layout.LAB_ROOT, 0o1777)
    except OSError as e:
        raise ConsoleError(f"cannot create {layout.LAB_ROOT}: {e.strerror}") from None


@contextlib.contextmanager
def global_lock():
    """Serialises slot allocation between processes (any user)."""
    ensure_root_dir()
    path = layout.LAB_ROOT / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def used_slots(except_name: str) -> set[int]:
    """Slots held by other labs' state files or by bridges still on this machine."""
    used = set()
    for entry in layout.LAB_ROOT.iterdir():
        if entry.is_dir() and entry.name != except_name:
            try:
                used.add(int(json.loads((entry / "lab.json").read_text())["slot"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass
    try:
        for link in os.listdir("/sys/class/net"):
            m = re.fullmatch(r"dcl(\d+)(b|d|dp|h\d+)", link)
            if m:
                used.add(int(m.group(1)))
    except OSError:
        pass
    return used


def allocate_slot(name: str) -> int:
    """A free slot, claimed under the global lock by creating the lab dir and a stub state."""
    free = [s for s in range(layout.SLOTS) if s not in used_slots(name)]
    if not free:
        raise ConsoleError(f"all {layout.SLOTS} lab slots are in use (see {layout.LAB_ROOT}); take a lab down first")
    return free[0]
