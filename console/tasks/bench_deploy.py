"""`invoke bench.deploy`: how long a one-file change takes to reach 10, 50 and 100 hosts,
and what each host costs the deploy host and the hosts themselves.

For each fleet size it brings up a lab running the demo shop, deploys the first release
(not measured), then deploys several one-file changes end to end (update, build, assets,
code, switch, graceful restart, verify, cleanup) and prints medians: wall time, the push
host's CPU per host (this process and every program it ran: rsync, sh, socat, ssh, and
OpenSSH's master connections, read from /proc before they are closed), the hosts' CPU
per host (every lab sshd and what it ran, read from /proc) and each phase.

`--compare` runs the OpenSSH transport (console/fleet/openssh.py), with every host staged
by rsync as before, and the Fabric one with today's staging (a host at the live release
gets the change in one command: console/pipeline/delivery.py) in turn on the same fleet,
in this one process, alternating which goes first, and prints both with the ratio new/old:
of the medians, and deploy by deploy (a round's two deploys run one after the other,
each followed by its switch, so their ratio sees one state of a shared machine, which the
medians of a few runs do not); then what a `switch` right after a deploy costs with each
(OpenSSH's masters outlive the deploy by 60 s; Fabric's connections die with it). Every deploy starts with no open
connection, as one an hour after the last would. The load average is printed with the
figures: on a shared machine only the ratios measured in one process mean much.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from invoke import task
from invoke.exceptions import Exit

from console.config.inventory import Host, Inventory, load_inventory
from console.core.errors import ConsoleError
from console.core.events import PHASES, Event, PhaseDone
from console.fleet.connection import Connect
from console.fleet.openssh import OpenSSHLink, close_all
from console.fleet.transport import HostLink
from console.pipeline.plan import DeployRequest
from console.tasks.errors import clear_errors
from console.tasks.flags import whole_number

TRANSPORTS: dict[str, Connect] = {"openssh": OpenSSHLink, "fabric": HostLink}
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    """One transport's measured deploys on one fleet."""

    walls: list[float] = field(default_factory=list)
    push: list[float] = field(default_factory=list)  # CPU seconds per deploy, all hosts
    remote: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    switches: list[float] = field(default_factory=list)

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")


def _proc_cpu(pid: int, children: bool) -> float:
    """CPU seconds of a process (and of its reaped children), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / _TICK


def _own_cpu() -> float:
    """This process's CPU and that of every program it ran and reaped."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _masters_cpu(inventory: Inventory) -> float:
    """CPU of OpenSSH's master connections to this fleet (daemons: never our children)."""
    from console.fleet.openssh import _control_dir

    marker = f"ControlPath={_control_dir(inventory)}"
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ssh") and any(a.startswith(marker.encode()) for a in argv):
            total += _proc_cpu(int(name), children=False)
    return total


def _hosts_cpu(lab, settle: bool) -> float:
    """CPU of every lab host's sshd and what it ran (sessions, rsync, commands): the
    listeners' own and reaped children's, plus every session still running.

    Live sessions are read rather than waited for: when an OpenSSH master exits, the
    host's session does not pass its child's CPU up to the listener, and a session's
    teardown costs CPU that only a connection's end shows. So a deploy's figure is read
    while its sessions are still up, for both transports (`_ReadBeforeClose`). `settle`:
    first wait (3 s at most) for the sessions of connections just closed to end."""
    from console.lab import sshd

    pids = [pid for pid in (sshd.listener_pid(h) for h in lab.hosts()) if pid]
    deadline = time.monotonic() + 3
    while settle and time.monotonic() < deadline and any(_children(pid) for pid in pids):
        time.sleep(0.05)
    total = 0.0
    for pid in pids:
        total += _proc_cpu(pid, children=True)
        total += sum(_proc_cpu(p, children=True) for p in _descendants(pid))
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    found = _children(pid)
    for child in list(found):
        found += _descendants(child)
    return found


class _ReadBeforeClose:
    """The Fabric transport's `Connect` for a measured deploy: when the run closes its
    first connection, every session is still up (as OpenSSH's masters are after the run),
    and the hosts' CPU is read then; what the reading cost this process is kept apart."""

    def __init__(self, lab) -> None:
        self.lab = lab
        self.cpu: float | None = None
        self.cost = 0.0

    def __call__(self, inventory: Inventory, host: Host) -> HostLink:
        reader = self

        class Link(HostLink):
            def close(self) -> None:
                if reader.cpu is None:
                    t0 = _own_cpu()
                    reader.cpu = _hosts_cpu(reader.lab, settle=False)
                    reader.cost = _own_cpu() - t0
                super().close()

        return Link(inventory, host)


def _no_connections(inventory: Inventory) -> None:
    """As for a deploy an hour after the last: every host needs a new handshake."""
    close_all([OpenSSHLink(inventory, host) for host in inventory.hosts])


def _deploy(lab, inventory: Inventory, name: str, sha: str, figures: Figures, switch_to: str | None) -> str:
    """One measured deploy of `sha`, then (`switch_to`) a switch back to that release; returns the release."""
    from console.session.runs import run_deploy, run_switch

    reader = _ReadBeforeClose(lab) if name == "fabric" else None
    connect = reader or TRANSPORTS[name]
    _no_connections(inventory)
    seen: list[Event] = []
    remote0, push0 = _hosts_cpu(lab, settle=True), _own_cpu()
    t0 = time.perf_counter()
    # the baseline is today's deploy before issue 10: OpenSSH, every host by rsync
    request = DeployRequest(user="bench", ref=sha, override="bench", delta=name == "fabric")
    done = run_deploy(inventory, request, printer=seen.append, connect=connect)
    wall = time.perf_counter() - t0
    if reader is not None:
        push = _own_cpu() - push0 - reader.cost
        remote = (reader.cpu if reader.cpu is not None else _hosts_cpu(lab, settle=True)) - remote0
    else:  # OpenSSH's masters are still up: read them before closing them
        push = _own_cpu() - push0 + _masters_cpu(inventory)
        remote = _hosts_cpu(lab, settle=False) - remote0
    if done.result != "ok":
        raise ConsoleError(
            f"bench deploy ({name}) to {len(inventory.hosts)} hosts ended {done.result}: {done.message}; {done.hosts_failed[:2]}"
        )
    figures.walls.append(wall)
    figures.push.append(push)
    figures.remote.append(remote)
    for event in seen:
        if isinstance(event, PhaseDone):
            figures.phases[event.phase].append(event.seconds)
    if switch_to:  # right after the deploy: OpenSSH's masters are still up, Fabric's connections are gone
        t0 = time.perf_counter()
        back = run_switch(inventory, switch_to, "bench", connect=TRANSPORTS[name])
        figures.switches.append(time.perf_counter() - t0)
        if back.result != "ok":
            raise ConsoleError(f"bench switch ({name}) ended {back.result}: {back.message}; {back.hosts_failed[:2]}")
    return done.deploy_id


def _measure(hosts: int, runs: int, with_restart: bool, names: list[str]) -> dict[str, Figures]:
    from console.demo.fleet import BUILD, HEALTH, RESTART
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
                data.update(build={"command": BUILD}, restart=RESTART, health=HEALTH, vars={"statsd": "127.0.0.1:9"})
            path.write_text(yaml.safe_dump(data))
            inventory = load_inventory(path)
            first = run_deploy(inventory, DeployRequest(user="bench", ref=trunk.commits["initial"], override="bench"))
            figures = {name: Figures() for name in names}
            last = first.deploy_id  # a deploy's release id is its deploy id
            for i in range(runs):
                order = names if i % 2 == 0 else names[::-1]
                for name in order:
                    note = f"bench change {i} {name}\n"
                    sha = commit_change(trunk, {"shop/VERSION_NOTE.txt": note}, f"Bench change {i} ({name})")
                    switch_to = last if len(names) > 1 else None  # a release cleanup keeps
                    last = _deploy(lab, inventory, name, sha, figures[name], switch_to)
            _no_connections(inventory)
            return figures
        finally:
            lab.down()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _report(n: int, runs: int, with_restart: bool, figures: dict[str, Figures], load: tuple[str, str]) -> None:
    shown = [p for p in PHASES if any(f.phases[p] for f in figures.values())]
    print(
        f"{n} hosts: one-file change, median of {runs} deploys per transport, chunk size 10"
        + (", with graceful restart + verify" if with_restart else ", without restart/verify")
        + f"; load average {load[0]} before, {load[1]} after"
    )
    print(
        f"  {'transport':<10} {'wall s':>7} {'push CPU ms/host':>17} {'hosts CPU ms/host':>18} "
        + " ".join(f"{p:>11}" for p in shown)
    )
    rows: dict[str, list[float]] = {}
    for name, f in figures.items():
        row = [f.median(f.walls), f.median(f.push) / n * 1000, f.median(f.remote) / n * 1000]
        row += [f.median(f.phases[p]) for p in shown]
        rows[name] = row
        print(
            f"  {name:<10} {row[0]:>7.2f} {row[1]:>17.1f} {row[2]:>18.1f} " + " ".join(f"{v:>11.2f}" for v in row[3:])
        )
    if set(rows) == {"openssh", "fabric"}:
        ratio = [new / old if old else float("nan") for new, old in zip(rows["fabric"], rows["openssh"], strict=True)]
        print(
            f"  {'new/old':<10} {ratio[0]:>7.2f} {ratio[1]:>17.2f} {ratio[2]:>18.2f} "
            + " ".join(f"{v:>11.2f}" for v in ratio[3:])
        )
        old, new = figures["openssh"], figures["fabric"]
        for what, pairs in (
            ("wall", zip(new.walls, old.walls, strict=True)),
            ("push CPU", zip(new.push, old.push, strict=True)),
        ):
            paired = sorted(new_one / old_one for new_one, old_one in pairs if old_one)
            print(
                f"  paired {what} new/old, deploy by deploy: median {statistics.median(paired):.2f} "
                f"(from {paired[0]:.2f} to {paired[-1]:.2f} over {len(paired)} pairs)"
            )
        print(
            f"  a switch right after a deploy: openssh {old.median(old.switches):.2f} s (its masters still up), "
            f"fabric {new.median(new.switches):.2f} s (a new connection per host)"
        )


@task(
    help={
        "sizes": "comma-separated fleet sizes (default 10,50,100)",
        "runs": "deploys measured per size (and per transport); the median is printed (default 5)",
        "no_restart": "leave out the shop's graceful restart and health check (sshd only: no shop runs)",
        "compare": "measure the OpenSSH transport and the Fabric one, alternating, on the same fleet",
    }
)
@clear_errors
def deploy(c, sizes="10,50,100", runs=None, no_restart=False, compare=False):
    """Measure a one-file change deployed end to end to lab fleets of several sizes."""
    try:
        counts = [int(s) for s in str(sizes).split(",") if s.strip()]
    except ValueError:
        raise Exit(f"error: --sizes must be numbers separated by commas, got {sizes!r}", code=1) from None
    runs = whole_number(runs, "--runs", default=5)
    names = ["openssh", "fabric"] if compare else ["fabric"]
    fabric: dict[int, Figures] = {}
    for n in counts:
        before = _load()
        figures = _measure(n, runs, not no_restart, names)
        _report(n, runs, not no_restart, figures, (before, _load()))
        fabric[n] = figures["fabric"]
    if len(counts) > 1:
        base = fabric[counts[0]]
        print(
            f"growth from {counts[0]} hosts (fabric): "
            + ", ".join(
                f"{n} hosts: wall {f.median(f.walls) / base.median(base.walls):.2f}x, "
                f"push CPU {f.median(f.push) / base.median(base.push):.2f}x"
                for n, f in fabric.items()
            )
        )
