"""The built-in demo: a lab fleet running the demo shop, its trunk, traffic and metrics.

`start_demo()` is what `deploy-console --demo` (and `invoke demo.up`) runs: it brings up a
lab named "demo", creates the demo trunk repository (reviewed commits, one unreviewed,
one schema migration, one that breaks checkouts and its fix), writes `hosts/demo.yaml`,
starts the embedded StatsD collector, deploys the first release of the shop (it carries
the first migration, so it goes out with an override, as a first install would), and
starts shoppers in a process of their own. A first-time user is one keypress from a
first deploy.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from console.config.inventory import Inventory, load_inventory
from console.demo.trunk import Trunk, create_trunk
from console.lab import LAB_ROOT, Lab
from console.lab import state as labstate
from console.lab.layout import deploy_address
from console.metrics.statsd import ensure_collector, stop_collector
from console.pipeline.plan import DeployRequest
from console.session.runs import run_deploy

NAME = "demo"
STATSD_PORT = 18125
INVENTORY = Path("hosts") / f"{NAME}.yaml"

# The shop runs on gunicorn (Debian's package); its ctl.py starts it or reloads it gracefully
# (SIGHUP) and waits until the new worker serves. Debian's python3 by full path, isolated:
# ctl.py needs only the standard library.
RESTART = "/usr/bin/python3 -I -S {deploy_path}/current/ctl.py graceful --bind={address}:{http_port} --statsd={statsd}"
HEALTH = "http://{address}:{http_port}/health"
# Each release is a new directory, so without this every host compiled the whole shop on
# every deploy (in the reload's check, then wrote __pycache__ for the worker): ~10 ms of CPU
# per host, once here instead. The hosts' own interpreter, so they use the files; hash-checked
# (PEP 552): the build stamps mtimes by content after this runs.
BUILD = "/usr/bin/python3 -I -S -m compileall -q --invalidation-mode checked-hash shop"
KEY_METRICS = [
    {"name": "checkouts", "query": "shop.checkouts", "stat": "rate", "unit": "/min", "bad": "down", "limit": "20%"},
    {
        "name": "errors",
        "query": "shop.errors",
        "stat": "rate",
        "unit": "/min",
        "bad": "up",
        "limit": "50%",
        "dry_run": True,
    },
    {"name": "latency p95", "query": "shop.latency", "stat": "p95", "unit": "ms", "bad": "up", "limit": "100%"},
]


def demo_extra(trunk: Trunk, statsd: str) -> dict:
    """The inventory keys the demo adds to the lab's generated inventory."""
    return {
        "environment": NAME,
        "repo": str(trunk.path),
        "branch": trunk.branch,
        "build": {"command": BUILD},
        "restart": RESTART,
        "health": HEALTH,
        "vars": {"statsd": statsd},
        "timeouts": {"connect": 3, "command": 20, "sync": 60, "verify": 15},
        "metrics": {"statsd": statsd, "baseline": 120, "watch": 300, "key": KEY_METRICS},
    }


def _traffic_pidfile(inventory: Inventory) -> Path:
    return inventory.state_dir / "traffic.pid"


def start_traffic(inventory: Inventory, rate: float = 6.0) -> None:
    """Shoppers in a process of their own (they outlive the console, like real ones)."""
    stop_traffic(inventory)
    with open(inventory.state_dir / "traffic.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "console.demo.fleet", "traffic", str(inventory.path), str(rate)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _traffic_pidfile(inventory).write_text(str(proc.pid))


def stop_traffic(inventory: Inventory) -> None:
    try:
        os.kill(int(_traffic_pidfile(inventory).read_text()), signal.SIGTERM)
    except (OSError, ValueError):
        pass
    _traffic_pidfile(inventory).unlink(missing_ok=True)


def start_demo(
    hosts: int = 20,
    *,
    traffic: bool = True,
    echo=print,
    name: str = NAME,
    inventory_path: Path = INVENTORY,
    statsd_port: int = STATSD_PORT,
) -> Path:
    """Bring the whole demo up from scratch; returns the demo inventory path. `name`, its
    inventory and StatsD port make a demo of another name beside it (`invoke bench.soak`)."""
    t0 = time.monotonic()
    lab = Lab(name)
    echo(f"demo: bringing up {hosts} lab hosts ...")
    trunk_path = _trunk_path(name)
    shutil.rmtree(trunk_path, ignore_errors=True)  # every demo starts from the same history
    # dated from an hour ago, so the queue's ages read minutes, as on a working day
    trunk = create_trunk(trunk_path, start=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
    path = lab.up(hosts, inventory_path=Path(inventory_path).resolve(), extra={"repo": str(trunk.path)})
    # The lab picks its address block; the shop sends StatsD to the deploy machine's address on it.
    st = labstate.load(name)
    address = deploy_address(st.slot) if st and st.netns else "127.0.0.1"
    data = yaml.safe_load(path.read_text())
    data.update(demo_extra(trunk, f"{address}:{statsd_port}"))
    data["environment"] = name
    path.write_text(
        "# The demo fleet, written by deploy-console --demo (invoke demo.up).\n" + yaml.safe_dump(data, sort_keys=False)
    )
    inventory = load_inventory(path)
    ensure_collector(inventory)
    echo(f"demo: deploying the first release of the shop ({trunk.commits['initial'][:7]}) ...")
    # No shop ran before the first install, so there is nothing to judge it against: it is
    # not watched (its verdicts would all be "no data, no baseline", the first thing a new
    # user would read on the Metrics tab). The shoppers start as soon as it serves, so the
    # baseline of the first deploy from the console builds from then on.
    unwatched = dataclasses.replace(inventory, metrics=dataclasses.replace(inventory.metrics, key=()))
    done = run_deploy(
        unwatched, DeployRequest(user="demo", ref=trunk.commits["initial"], override="first install of the demo shop")
    )
    if done.result != "ok":
        echo(f"demo: the first deploy ended {done.result}: {done.message or dict(done.hosts_failed)}")
    if traffic:
        start_traffic(inventory)
    echo(f"demo: ready in {time.monotonic() - t0:.1f} s: {path}")
    return path


def stop_demo(*, name: str = NAME, inventory_path: Path = INVENTORY) -> None:
    """Stop traffic and the collector, take the lab down."""
    path = Path(inventory_path).resolve()
    if path.exists():
        inventory = load_inventory(path)
        stop_traffic(inventory)
        stop_collector(inventory)
    Lab(name).down()
    path.unlink(missing_ok=True)
    shutil.rmtree(_trunk_path(name), ignore_errors=True)


def _trunk_path(name: str) -> Path:
    return LAB_ROOT / f"{name}-trunk.git"


def _traffic_main(inventory_path: str, rate: str) -> int:
    from console.demo.traffic import Traffic, host_urls

    inventory = load_inventory(inventory_path)
    shop = Traffic(host_urls(inventory.hosts), rate=float(rate), shoppers=6)
    signal.signal(signal.SIGTERM, lambda *_: shop.stop())
    shop.start(24 * 3600.0)
    print(shop.wait().line(), flush=True)
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["traffic"]:
    sys.exit(_traffic_main(*sys.argv[2:4]))
