"""`invoke bench.deploy`: how long a one-file change takes to reach 10, 50 and 100 hosts.

For each fleet size it brings up a lab running the demo shop, deploys the first release
(not measured), then deploys several one-file changes end to end (update, build, assets,
code, switch, graceful restart, verify, cleanup) and prints the median wall time per
fleet size and per phase, with each size's ratio to the smallest fleet measured in the
same run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import yaml
from invoke import task
from invoke.exceptions import Exit

from console.config.inventory import load_inventory
from console.core.errors import ConsoleError
from console.core.events import PHASES, Event, PhaseDone
from console.fleet.openssh import OpenSSHLink, close_all
from console.pipeline.plan import DeployRequest
from console.tasks.errors import clear_errors


def _measure(hosts: int, runs: int, with_restart: bool) -> tuple[float, dict[str, float]]:
    from console.demo.fleet import HEALTH, RESTART
    from console.demo.trunk import commit_change, create_trunk
    from console.lab import Lab
    from console.session.runs import run_deploy

    lab = Lab(f"bench{hosts}")
    with tempfile.TemporaryDirectory() as tmp:
        trunk = create_trunk(Path(tmp) / "trunk.git")
        path = lab.up(hosts, inventory_path=Path(tmp) / "bench.yaml", extra={"repo": str(trunk.path)})
        try:
            data = yaml.safe_load(path.read_text())
            data["state_dir"] = str(Path(tmp) / "state")
            if with_restart:
                data.update(restart=RESTART, health=HEALTH, vars={"statsd": "127.0.0.1:9"})
            path.write_text(yaml.safe_dump(data))
            inventory = load_inventory(path)
            run_deploy(inventory, DeployRequest(user="bench", ref=trunk.commits["initial"], override="bench"))
            links = [OpenSSHLink(inventory, host) for host in inventory.hosts]
            walls: list[float] = []
            phases: dict[str, list[float]] = {p: [] for p in PHASES}
            for i in range(runs):
                sha = commit_change(trunk, {"shop/VERSION_NOTE.txt": f"bench change {i}\n"}, f"Bench change {i}")
                seen: list[Event] = []
                close_all(links)
                t0 = time.perf_counter()
                done = run_deploy(
                    inventory, DeployRequest(user="bench", ref=sha, override="bench"), printer=seen.append
                )
                walls.append(time.perf_counter() - t0)
                if done.result != "ok":
                    raise ConsoleError(f"bench deploy to {hosts} hosts ended {done.result}: {done.message}")
                for event in seen:
                    if isinstance(event, PhaseDone):
                        phases[event.phase].append(event.seconds)
            return statistics.median(walls), {p: statistics.median(v) for p, v in phases.items() if v}
        finally:
            lab.down()


@task(
    help={
        "sizes": "comma-separated fleet sizes (default 10,50,100)",
        "runs": "deploys measured per size; the median is printed (default 5)",
        "no_restart": "leave out the shop's graceful restart and health check",
    }
)
@clear_errors
def deploy(c, sizes="10,50,100", runs=5, no_restart=False):
    """Measure a one-file change deployed end to end to lab fleets of several sizes."""
    try:
        counts = [int(s) for s in str(sizes).split(",") if s.strip()]
    except ValueError:
        raise Exit(f"error: --sizes must be numbers separated by commas, got {sizes!r}", code=1) from None
    results = {}
    for n in counts:
        results[n] = _measure(n, int(runs), not no_restart)
        print(f"  {n} hosts: median {results[n][0]:.2f} s", flush=True)
    base = results[counts[0]][0]
    shown = [p for p in PHASES if any(p in r[1] for r in results.values())]
    print(
        f"one-file change, median of {runs} deploys, chunk size 10"
        + (", without restart/verify" if no_restart else ", with graceful restart + verify")
    )
    print(f"{'hosts':>6} {'wall s':>7} {'ratio':>6} " + " ".join(f"{p:>11}" for p in shown))
    for n, (wall, phases) in results.items():
        print(f"{n:>6} {wall:>7.2f} {wall / base:>6.2f} " + " ".join(f"{phases.get(p, 0):>11.2f}" for p in shown))
