"""Helpers shared by the end-to-end tests (test_e2e_*.py); this module holds no tests.

`DemoFleet` is the demo of `console.demo.fleet.start_demo`, made in a test's tmp_path: a
lab of its own (named `t<pid>e<n>`), the demo trunk, the demo inventory keys (restart,
health, vars.statsd, metrics) with a StatsD port of its own on the lab's deploy address,
a short watch, and the StatsD collector running. `close()` stops every process the fleet
started: traffic, watcher processes, the collector, Prometheus, and the lab (which kills
the shops in its hosts' namespaces).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from console.config.inventory import Inventory, load_inventory
from console.core.events import Subscriber
from console.demo.fleet import demo_extra
from console.demo.traffic import Traffic, host_urls
from console.demo.trunk import Trunk, commit_change, create_trunk
from console.lab import Lab
from console.lab import state as labstate
from console.lab.layout import deploy_address
from console.metrics.statsd import ensure_collector, stop_collector
from console.metrics.store import StoreReader, store_path
from console.pipeline.plan import DeployRequest
from console.session.runs import run_deploy
from console.state.history import History

ROOT = Path(__file__).resolve().parents[2]
USER = "e2e"
_COUNTER = itertools.count(1)


def wait_for(predicate, timeout: float, what: str, every: float = 0.1):
    """Poll `predicate` until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def free_tcp_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def pids_naming(text: str) -> list[int]:
    """Processes whose command line contains `text` (a path unique to one test)."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry))
    return found


def kill_pids(pids: list[int], timeout: float = 5.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                pass
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for pid in pids:  # reap children of this process (the watchers are started by run_deploy)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


@dataclass
class DemoFleet:
    lab: Lab
    trunk: Trunk
    workdir: Path
    inventory: Inventory
    statsd: str
    _stops: list = field(default_factory=list)

    @property
    def history(self) -> History:
        return History(self.inventory.state_dir)

    def deploy(self, ref: str | None = None, *, printer: Subscriber | None = None, **request: Any):
        """Deploy `ref` as the e2e user; `printer` hears every event as the deploy emits it."""
        return run_deploy(self.inventory, DeployRequest(user=USER, ref=ref, **request), printer=printer)

    def traffic(self, rate: float, shoppers: int = 6, **kw: Any) -> Traffic:
        shop = Traffic(host_urls(self.inventory.hosts), rate=rate, shoppers=shoppers, **kw)
        shop.start()
        self._stops.append(lambda: (shop.stop(), shop.wait()))
        return shop

    def css_change(self, n: int) -> str:
        """A reviewed commit giving shop.css a new colour (a new hashed asset name)."""
        css = (ROOT / "console/demo/shop/assets/css/shop.css").read_text()
        css += f"\n.e2e-{n} {{ color: #{(n * 2654435761) % 0xFFFFFF:06x}; }}\n"
        return commit_change(self.trunk, {"assets/css/shop.css": css}, f"Colour {n} for the e2e test")

    def deployable_head(self) -> str:
        """A reviewed commit on top of the trunk whose shop compiles.

        The demo trunk's `unreviewed` commit (console/demo/trunk.py) edits `'<h1>Shop</h1>`
        inside the f-string `f'<h1>Shop</h1>`, which makes `ff'...'` in shop/pages.py: a
        SyntaxError, so no release from it on starts. Until that is fixed there, the tests
        that deploy past it put a reviewed repair on top; once fixed, a harmless change."""
        show = subprocess.run(
            ["git", "-C", str(self.trunk.path), "show", f"{self.trunk.branch}:shop/pages.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        try:
            compile(show, "pages.py", "exec")
            files = {"shop/changes/e2e.txt": "the head compiles\n"}
        except SyntaxError:
            files = {"shop/pages.py": show.replace("ff'<h1>Shop", "f'<h1>Shop")}
        return commit_change(self.trunk, files, "Repair the shop page heading")

    def watchers(self) -> list[int]:
        return [
            p
            for p in pids_naming(str(self.inventory.path))
            if b"console.session.watcher" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]

    def on_close(self, stop) -> None:
        self._stops.append(stop)

    def close(self) -> None:
        errors = []
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - every stop runs
                errors.append(exc)
        # watcher processes (python -m console.session.watcher --inventory THIS --job ...)
        try:
            kill_pids(pids_naming(str(self.inventory.path)))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        try:
            stop_collector(self.inventory)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        self.lab.down()
        if errors:
            raise errors[0]


def make_demo_fleet(workdir: Path, hosts: int, **keys: Any) -> DemoFleet:
    """The demo (start_demo's inventory) on a new lab of `hosts` hosts in `workdir`.
    `keys` override inventory keys (e.g. chunk_size, metrics, notify)."""
    workdir.mkdir(parents=True, exist_ok=True)
    lab = Lab(f"t{os.getpid()}e{next(_COUNTER)}")
    trunk = create_trunk(workdir / "trunk.git")
    path = lab.up(hosts, inventory_path=workdir / "demo.yaml", extra={"repo": str(trunk.path)})
    try:
        st = labstate.load(lab.name)
        address = deploy_address(st.slot) if st and st.netns else "127.0.0.1"
        statsd = f"{address}:{free_udp_port(address)}"
        data = yaml.safe_load(path.read_text())
        data.update(demo_extra(trunk, statsd))
        data["environment"] = "e2e"
        data["state_dir"] = str(workdir / "state")
        data["metrics"].update(baseline=30, watch=60)
        for key, value in keys.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = workdir / "e2e.yaml"  # not the lab's file: lab.down() would remove that one
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        inventory = load_inventory(path)
        fleet = DemoFleet(lab, trunk, workdir, inventory, statsd)
        ensure_collector(inventory)
        wait_for(lambda: StoreReader(store_path(inventory)).alive(0, 2**40), 10, "the StatsD collector")
    except BaseException:
        try:
            stop_collector(workdir / "state" / "metrics.sqlite")
        finally:
            lab.down()
        raise
    return fleet
