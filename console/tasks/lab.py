"""`invoke lab.*`: bring the fleet lab up and down, look at it, and break and heal its hosts.

A thin layer over `console.lab.Lab`; failures are one line (`clear_errors`).
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, task

from console.lab import Lab
from console.tasks.errors import clear_errors
from console.tasks.flags import whole_number

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME_HELP = "which lab (default: lab); each name is its own fleet, so the demo and a test run never meet"
HOST_HELP = "the host's name, e.g. web003"


def default_inventory(name: str) -> Path:
    return REPO_ROOT / "hosts" / f"{name}.yaml"


@task(
    auto_shortflags=False,
    help={
        "hosts": "how many hosts, named web001.. (default 4; 100 come up in about 1.5 s as root)",
        "rate": "shape every host's link and the deploy machine's link with tc tbf, e.g. 10mbit (root only)",
        "name": NAME_HELP,
        "inventory": "where to write the inventory (default: hosts/<name>.yaml in the repo)",
    },
)
@clear_errors
def up(c, hosts=None, rate=None, name="lab", inventory=None):
    """Start a lab of real sshd hosts (replacing any lab of the same name) and write its inventory."""
    count = whole_number(hosts, "--hosts", default=4)
    lab = Lab(name)
    path = lab.up(count, rate=rate, inventory_path=Path(inventory) if inventory else default_inventory(name))
    st = lab.status()
    where = f"{st[0].address}..{st[-1].address}" if st[0].port == 22 else f"127.0.0.1:{st[0].port}..{st[-1].port}"
    print(f"lab {name}: {len(st)} hosts up ({where}), inventory {path}")


@task(auto_shortflags=False, help={"name": NAME_HELP})
@clear_errors
def down(c, name="lab"):
    """Stop the lab and remove everything of it: processes, namespaces, links, mounts, files, inventory."""
    Lab(name).down()
    print(f"lab {name}: down")


@task(auto_shortflags=False, help={"name": NAME_HELP})
@clear_errors
def status(c, name="lab"):
    """Show every host of the lab: address, deploy path and condition (up, dead, cut, filled, slow)."""
    rows = Lab(name).status()
    print(f"{'host':<8} {'address':<20} {'deploy path':<44} condition")
    for s in rows:
        addr = s.address if s.port == 22 else f"{s.address}:{s.port}"
        print(f"{s.name:<8} {addr:<20} {s.deploy_path:<44} {s.condition}")


@task(auto_shortflags=False, help={"host": HOST_HELP, "name": NAME_HELP})
@clear_errors
def kill(c, host, name="lab"):
    """Kill the host's sshd and its sessions (as root: every process of the host)."""
    Lab(name).kill(host)
    print(f"{host}: killed")


@task(auto_shortflags=False, help={"host": HOST_HELP, "name": NAME_HELP})
@clear_errors
def cut(c, host, name="lab"):
    """Take the host's link down: connections to it hang, they are not refused (without root: SIGSTOP)."""
    Lab(name).cut(host)
    print(f"{host}: cut")


@task(auto_shortflags=False, help={"host": HOST_HELP, "name": NAME_HELP})
@clear_errors
def fill(c, host, name="lab"):
    """Make the host's deploy path a 4 MiB tmpfs, nearly full, holding a copy of what was there."""
    Lab(name).fill(host)
    print(f"{host}: deploy path filled")


@task(auto_shortflags=False, help={"host": HOST_HELP, "rate": "tc rate, e.g. 1mbit, 500kbit, 2mbps", "name": NAME_HELP})
@clear_errors
def slow(c, host, rate, name="lab"):
    """Shape the host's link (both directions) to RATE with tc tbf (root only)."""
    Lab(name).slow(host, rate)
    print(f"{host}: slowed to {rate}")


@task(auto_shortflags=False, help={"host": HOST_HELP, "name": NAME_HELP})
@clear_errors
def rekey(c, host, name="lab"):
    """Give the host a new host key; known_hosts keeps the old one, so deploys must refuse it."""
    Lab(name).rekey(host)
    print(f"{host}: new host key")


@task(auto_shortflags=False, help={"host": f"{HOST_HELP}, or 'all'", "name": NAME_HELP})
@clear_errors
def heal(c, host, name="lab"):
    """Undo every fault of the host (cut, fill, slow, rekey) and restart its sshd if it is dead."""
    Lab(name).heal(host)
    print(f"{host}: healed")


ns = Collection("lab")
for _t in (up, down, status, kill, cut, fill, slow, heal, rekey):
    ns.add_task(_t)
