"""A fake fleet for fast tests of the pipeline's failure policy: no ssh, no lab.

`shop_trunk(path)` makes a trunk of one reviewed commit, `inventory(tmp_path, trunk)`
writes an inventory of eight such hosts (in chunks of four) and `deploy(inventory, fleet)`
runs the real pipeline over them.

Built from the engine's own types: `FakeFleet.connect` is a `console.fleet.connection.Connect`,
and its connections answer with `Result` or raise `HostError` as a real host would. A
host keeps what it was sent: the revision of the code staged in each release (read from
the real build's REVISION file) and the revision `current` names, so an activate of a
release that was never staged fails, and the health command prints what is live.

`fail[(host, phase)] = reason` makes that host's step of that phase fail (a switch's
"check" of the release too); `on_step(host, phase)` runs as each step begins (a test sets a stop request from it). Every step is
recorded in order as (host, phase, "start" | "end"), across the threads of a chunk.
A deploy's one-command staging (`remote.stage`) records both phases, in order, and fails
as that command would; a host whose live release is not the command's base says so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from console.config.inventory import Host, Inventory, load_inventory
from console.core.events import DeployDone
from console.fleet import remote
from console.fleet.connection import HostError, Result
from console.pipeline.plan import DeployRequest
from console.pipeline.run import Pipeline
from support.fleet import Recorder
from support.gitrepo import Repo

USER = "tester"
HOSTS = [f"web{i:02d}" for i in range(1, 9)]
#: The message tail of a reviewed commit.
REVIEWED = "\n\nReviewed-by: Bob Baker <bob@example.com>"


def shop_trunk(path: Path) -> Repo:
    """A trunk whose one reviewed commit holds the shop's code and a stylesheet in assets/."""
    repo = Repo(path)
    repo.commit(
        "The shop" + REVIEWED, {"shop/app.py": "print('shop')\n", "assets/css/shop.css": "body { color: black; }\n"}
    )
    return repo


#: The phase of a command, by the `what` the steps give it.
PHASE_OF = {
    "check release": "check",
    "activate": "activate",
    "restart": "restart",
    "health": "verify",
    "survey": "cleanup",
    "cleanup": "cleanup",
    "remove partial staging": "sync-code",
}


class FakeFleet:
    """Every host of an inventory as a fake (see the module doc)."""

    def __init__(self) -> None:
        self.fail: dict[tuple[str, str], str] = {}
        self.on_step: Callable[[str, str], None] = lambda host, phase: None
        self.calls: list[tuple[str, str, str]] = []
        self.rsync_options: dict[str, tuple[str, ...]] = {}  # phase -> the options the step passed
        self.closed: list[str] = []
        self.commands: list[tuple[str, str, str, str | bytes | None]] = []  # (host, what, command, stdin) of every run
        self.staged: dict[str, dict[str, str]] = {}  # host -> release -> revision
        self.current: dict[str, str] = {}  # host -> the revision live on it
        self.live: dict[str, str] = {}  # host -> the release live on it
        self.by_delta: list[str] = []  # the hosts staged by one `stage` command, in order
        self._lock = threading.Lock()

    def connect(self, inventory: Inventory, host: Host) -> FakeConnection:
        return FakeConnection(self, host, inventory)

    # -- what the tests read ------------------------------------------------------------

    def hosts_of(self, phase: str) -> list[str]:
        """The hosts on which `phase` began, in order."""
        return [h for h, p, edge in self.calls if p == phase and edge == "start"]

    def index(self, host: str, phase: str, edge: str) -> int:
        return self.calls.index((host, phase, edge))

    # -- what the connections do ----------------------------------------------------------

    def step(self, host: str, phase: str, work: Callable[[], Result | int]) -> Result | int:
        with self._lock:
            self.calls.append((host, phase, "start"))
        self.on_step(host, phase)
        try:
            reason = self.fail.get((host, phase))
            if reason:
                raise HostError(reason, exit_code=1, output=reason)
            return work()
        finally:
            with self._lock:
                self.calls.append((host, phase, "end"))


class FakeConnection:
    """One fake host's `Connection`."""

    def __init__(self, fleet: FakeFleet, host: Host, inventory: Inventory) -> None:
        self.fleet = fleet
        self.host = host
        self.inventory = inventory

    def run(
        self, command: str, *, timeout: float | None = None, what: str = "", stdin: str | bytes | None = None
    ) -> Result:
        if what == "stage":
            return self._stage(command)
        phase = PHASE_OF[what]
        with self.fleet._lock:
            self.fleet.commands.append((self.host.name, what, command, stdin))
        if what == "remove partial staging":
            return Result("", "", 0)  # part of a failing sync-code: not a step of its own
        result = self.fleet.step(self.host.name, phase, lambda: self._answer(what, command))
        assert isinstance(result, Result)
        return result

    def _stage(self, command: str) -> Result:
        """`remote.stage`: a host at its base stages both phases (a failure of either with
        the real command's exit status); any other answers that it is not at the base."""
        name = self.host.name
        base = re.search(r"current -ef releases/(\S+) ", command)
        release = re.search(r"\[ ! -e releases/(\S+) \]", command)
        assert base and release, command
        if self.fleet.live.get(name) != base.group(1):
            return Result(f"{remote.FALLBACK} current is not {base.group(1)}\n", "", 0)
        code = self.inventory.state_dir / "builds" / release.group(1) / "code"

        def staged() -> int:
            self.fleet.staged.setdefault(name, {})[release.group(1)] = (code / "REVISION").read_text().strip()
            return 0

        for phase, work, failed in (
            ("sync-assets", lambda: 0, remote.ASSETS_FAILED),
            ("sync-code", staged, remote.CODE_FAILED),
        ):
            try:
                self.fleet.step(name, phase, work)
            except HostError as exc:
                raise HostError(f"stage exited {failed}", exit_code=failed, output=exc.output) from None
        with self.fleet._lock:
            self.fleet.by_delta.append(name)
        return Result(f"{remote.STAGED}\n", "", 0)

    def _answer(self, what: str, command: str) -> Result:
        name = self.host.name
        if what == "check release":
            release = re.search(r"releases/([^/\s']+)/REVISION", command)
            present = release is not None and release.group(1) in self.fleet.staged.get(name, {})
            return Result("present\n" if present else "missing\n", "", 0)
        if what == "activate":
            release = re.search(r"test -f releases/(\S+)/REVISION", command)
            revision = self.fleet.staged.get(name, {}).get(release.group(1) if release else "")
            if revision is None:
                raise HostError("activate exited 1", exit_code=1)
            self.fleet.current[name] = revision
            self.fleet.live[name] = release.group(1) if release else ""
            return Result(revision + "\n", "", 0)
        if what == "health":
            return Result(self.fleet.current.get(name, "") + "\n", "", 0)
        return Result("", "", 0)

    def rsync(self, source: Path, dest: str, options: Sequence[str] = (), *, timeout: float | None = None) -> int:
        phase = "sync-assets" if dest.endswith("/assets") else "sync-code"
        self.fleet.rsync_options[phase] = tuple(options)

        def send() -> int:
            if phase == "sync-code":
                release = dest.rsplit("/", 1)[1]
                revision = (source / "REVISION").read_text().strip()
                self.fleet.staged.setdefault(self.host.name, {})[release] = revision
            return sum(p.stat().st_size for p in source.rglob("*") if p.is_file())

        result = self.fleet.step(self.host.name, phase, send)
        assert isinstance(result, int)
        return result

    def close(self) -> None:
        with self.fleet._lock:
            self.fleet.closed.append(self.host.name)


def inventory(tmp_path: Path, trunk: Repo, **keys: Any) -> Inventory:
    """Eight hosts in chunks of four; `keys` override the inventory's."""
    (tmp_path / "key").write_text("not a key: nothing connects\n")
    (tmp_path / "key").chmod(0o600)
    (tmp_path / "known_hosts").write_text("")
    doc: dict[str, Any] = {
        "environment": "policy",
        "repo": str(trunk.path),
        "state_dir": str(tmp_path / "state"),
        "ssh": {"user": "deploy", "key": str(tmp_path / "key"), "known_hosts": str(tmp_path / "known_hosts")},
        "hosts": [{"name": name, "address": "127.0.0.1", "port": 2200 + i} for i, name in enumerate(HOSTS, 1)],
        "chunk_size": 4,
        "max_failures": 0,
        "restart": "true",
        "health": {"command": "cat {deploy_path}/current/REVISION"},
        "timeouts": {"connect": 1, "command": 5, "sync": 5, "verify": 2},
        **keys,
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_inventory(path)


def deploy(
    inv: Inventory,
    fleet: FakeFleet,
    *,
    stop: threading.Event | None = None,
    live_revision: str | None = None,
    **request: Any,
) -> tuple[DeployDone, Recorder]:
    """Plan and run a deploy as the test user on the fake fleet, from `live_revision`."""
    rec = Recorder()
    pipeline = Pipeline(inv, rec, stop=stop, connect=fleet.connect, live_revision=live_revision)
    halt_reason = request.pop("halt_reason", lambda: None)
    plan = pipeline.plan(DeployRequest(user=USER, **request))
    return pipeline.run(plan, halt_reason=halt_reason), rec
