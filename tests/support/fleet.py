"""Helpers shared by the deploy tests (test_deploy_*.py); this module holds no tests.

A `Fleet` is one lab (from conftest's `lab_factory`) plus a demo trunk and a state
directory of its own, so the deploy tests of one module share a lab with nobody's
history or lock. `fleet.inventory(**keys)` writes an inventory from the lab's own with
small time limits (faults resolve in seconds) and any keys overridden.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from console.config.inventory import Inventory, load_inventory
from console.core.events import DeployStarted, Event, HostFailed, HostOutput, HostProgress
from console.demo.trunk import Trunk, commit_change, create_trunk
from console.lab import Lab
from console.pipeline.plan import DeployRequest
from console.session.runs import run_deploy

DEPLOY_PATH = "/srv/www"
TIMEOUTS = {"connect": 2, "command": 5, "sync": 8, "verify": 5}
USER = "tester"


class Recorder:
    """A subscriber that keeps every event (fanout threads emit concurrently)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type) -> list:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]

    @property
    def release(self) -> str:
        return self.of(DeployStarted)[0].release

    def failures(self) -> dict[str, HostFailed]:
        return {e.host: e for e in self.of(HostFailed)}


def staged_by(rec: Recorder) -> dict[str, str]:
    """host -> "delta" or "rsync": how its code was staged (the staging's live log says)."""
    how = {}
    for event in rec.of(HostOutput):
        if event.phase == "sync-assets" and any(line.startswith("$ cd ") for line in event.lines):
            how.setdefault(event.host, "delta")
        if event.phase == "sync-code" and any(line.startswith("$ rsync") for line in event.lines):
            how[event.host] = "rsync"
    return how


@dataclass
class Fleet:
    lab: Lab
    lab_inventory: Path
    trunk: Trunk
    state_dir: Path
    workdir: Path
    hosts: list[str] = field(default_factory=list)

    # -- inventory --------------------------------------------------------------------
    def inventory(self, name: str = "inventory", *, only: int | None = None, **keys: Any) -> Inventory:
        """An inventory of this fleet (or of its first `only` hosts) with the test time
        limits and `keys` overridden."""
        doc = yaml.safe_load(self.lab_inventory.read_text())
        doc["hosts"] = doc["hosts"][:only]
        doc.update(
            environment="deploytest",
            repo=str(self.trunk.path),
            state_dir=str(self.state_dir),
            timeouts=dict(TIMEOUTS),
            chunk_size=10,
            max_failures=0,
            restart="test -f {deploy_path}/current/REVISION",
            health={"command": "cat {deploy_path}/current/REVISION"},
        )
        doc.update(keys)
        doc = {k: v for k, v in doc.items() if v is not None}
        path = self.workdir / f"{name}-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return load_inventory(path)

    # -- trunk ------------------------------------------------------------------------
    def change(self, label: str, *, asset: bool = True, extra: dict[str, str | None] | None = None) -> str:
        """Commit a small reviewed change (code, and a new asset unless asset=False)."""
        token = uuid.uuid4().hex
        files: dict[str, str | None] = {f"shop/changes/{label}.txt": f"{label} {token}\n"}
        if asset:
            files[f"assets/css/{label}.css"] = f".{label} {{ content: '{token}'; }}\n"
        files.update(extra or {})
        return commit_change(self.trunk, files, f"Test change {label}")

    # -- hosts --------------------------------------------------------------------------
    def sh(self, host: str, script: str, timeout: float = 30) -> str:
        proc = self.lab.exec(host, ["sh", "-c", script], timeout=timeout)
        assert proc.returncode == 0, f"{host}: {script!r} exited {proc.returncode}: {proc.stderr.strip()}"
        return proc.stdout

    def revision(self, host: str) -> str:
        return self.sh(host, f"cat {DEPLOY_PATH}/current/REVISION").strip()

    def current(self, host: str) -> str:
        return self.sh(host, f"readlink {DEPLOY_PATH}/current").strip().removeprefix("releases/")

    def releases(self, host: str) -> list[str]:
        return sorted(self.sh(host, f"ls -1 {DEPLOY_PATH}/releases").split())

    def listing(self, host: str) -> str:
        """Every path under the deploy path with its type, size, change time and link target."""
        return self.sh(host, f"find {DEPLOY_PATH} -printf '%y %p %s %C@ %l\\n' | sort")


def make_fleet(lab_factory, size: int, workdir: Path) -> Fleet:
    """A fleet on the lab of `size` hosts, with a new trunk and state directory, faults healed."""
    lab, inventory_path = lab_factory(size)
    lab.heal()
    workdir.mkdir(parents=True, exist_ok=True)
    trunk = create_trunk(workdir / "trunk.git")
    fleet = Fleet(lab, Path(inventory_path), trunk, workdir / "state", workdir)
    fleet.hosts = [h.name for h in lab.hosts()]
    return fleet


def deploy(
    inventory: Inventory, *, override: str | None = "test fixture", recorder: Recorder | None = None, **request: Any
):
    """run_deploy as the test user; the override only matters for ranges that need one."""
    return run_deploy(inventory, DeployRequest(user=USER, override=override, **request), printer=recorder)


class Killer:
    """A subscriber that kills `victim`'s sshd `after` seconds into its step of `phase`
    (the transfer under way); `killed` is set once it has."""

    def __init__(self, fleet: Fleet, victim: str, phase: str, after: float = 1.0) -> None:
        self.fleet, self.victim, self.phase, self.after = fleet, victim, phase, after
        self.killed = threading.Event()

    def __call__(self, event: Event) -> None:
        if isinstance(event, HostProgress) and event.phase == self.phase and event.host == self.victim:
            threading.Thread(target=self._kill, daemon=True).start()

    def _kill(self) -> None:
        time.sleep(self.after)
        self.fleet.lab.kill(self.victim)
        self.killed.set()


def random_text(size: int) -> str:
    """`size` bytes of incompressible text (base64 of random bytes)."""
    return base64.b64encode(os.urandom(size * 3 // 4 + 3)).decode()[:size]
