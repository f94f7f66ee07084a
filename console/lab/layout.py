"""Where a lab's things live: names, address blocks, ports, links and paths, all keyed by the lab name.

Every lab gets a *slot* (0..31). The slot picks its own /20 inside 198.18.0.0/15 (root mode),
its own port range on 127.0.0.1 (non-root mode) and the names of its links. Namespaces and
the state directory are keyed by the lab name itself, so two labs never share anything.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from console.core.errors import ConsoleError

LAB_ROOT = Path("/tmp/deploy-console-labs")
"""Parent of every lab's state directory (mode 1777, like /tmp, so any user can make a lab)."""

LAB_NET = ipaddress.IPv4Network("198.18.0.0/15")
"""The benchmarking range (RFC 2544). A lab never uses any other address."""

SLOTS = 32
"""How many labs can run at once: 198.18.0.0/15 holds 32 blocks of /20."""

BLOCK_PREFIX = 20
MAX_HOSTS_NETNS = 4000
"""Hosts per lab in root mode (a /20 minus the deploy machine)."""

PORT_BASE = 10000
PORTS_PER_SLOT = 700
MAX_HOSTS_LOCAL = 349
"""Hosts per lab without root: ssh ports then http ports, 349 of each per slot, below the ephemeral range."""

DEPLOY_USER = "labdeploy"
DEPLOY_HOME = Path("/var/lib/labdeploy")
"""The deploy user's home in root mode; every host bind-mounts its own directory over it."""

HOST_DEPLOY_PATH = "/srv/www"
HTTP_PORT = 8080

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,23}\Z")


def check_name(name: str) -> str:
    """Return `name` if it can key a lab, else raise a one-line ConsoleError."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConsoleError(
            f"lab name {name!r} is not valid: use 1-24 characters a-z, 0-9 and '-', starting with a letter or digit"
        )
    return name


def lab_dir(name: str) -> Path:
    return LAB_ROOT / name


def host_name(index: int) -> str:
    """web001, web002, ... (index is 1-based)."""
    return f"web{index:03d}"


def block(slot: int) -> ipaddress.IPv4Network:
    size = 2 ** (32 - BLOCK_PREFIX)
    return ipaddress.IPv4Network((int(LAB_NET.network_address) + slot * size, BLOCK_PREFIX))


def deploy_address(slot: int) -> str:
    """The deploy machine's own address on the lab bridge."""
    return str(block(slot).network_address + 1)


def host_address(slot: int, index: int) -> str:
    return str(block(slot).network_address + 1 + index)


def host_mac(slot: int, index: int) -> str:
    """A fixed MAC per host, so the deploy machine can hold a permanent neighbour entry for it."""
    return f"02:dc:{slot:02x}:{index >> 8:02x}:{index & 0xFF:02x}:01"


def ssh_port(slot: int, index: int) -> int:
    return PORT_BASE + slot * PORTS_PER_SLOT + index


def http_port(slot: int, index: int) -> int:
    return PORT_BASE + slot * PORTS_PER_SLOT + MAX_HOSTS_LOCAL + 1 + index


def netns_name(name: str, host: str) -> str:
    """The host's network namespace; '.' cannot occur in a lab name, so prefixes never overlap."""
    return f"dcl-{name}.{host}"


def netns_prefix(name: str) -> str:
    return f"dcl-{name}."


def bridge_link(slot: int) -> str:
    return f"dcl{slot}b"


def deploy_link(slot: int) -> str:
    """The deploy machine's end of its veth pair (holds the deploy address)."""
    return f"dcl{slot}d"


def deploy_peer_link(slot: int) -> str:
    """The bridge's end of the deploy machine's veth pair."""
    return f"dcl{slot}dp"


def deploy_ifb(slot: int) -> str:
    """Where a shaped lab queues what the deploy machine sends, on the bridge's side (see shaping)."""
    return f"dcl{slot}di"


def host_link(slot: int, index: int) -> str:
    """The bridge's end of a host's veth pair; the host's end is `eth0` in its namespace."""
    return f"dcl{slot}h{index}"


def link_alias(name: str) -> str:
    """Set on every link of a lab, so `down` finds them even without the state file."""
    return f"deploy-console-lab:{name}"


@dataclass(frozen=True)
class HostSpec:
    """One host of a lab, as recorded in the lab's state file."""

    name: str
    index: int
    address: str
    port: int
    deploy_path: str
    http_port: int
    dir: str
    netns: str = ""  # root mode only: its network namespace, its veth on the bridge, that veth's MAC
    link: str = ""
    mac: str = ""

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def www(self) -> Path:
        """The lab directory that is (or, without root, acts as) this host's deploy path."""
        return self.path / "www"

    @property
    def home(self) -> Path:
        return self.path / "home"

    @property
    def host_key(self) -> Path:
        return self.path / "ssh_host_ed25519_key"

    @property
    def pid_file(self) -> Path:
        return self.path / "sshd.pid"

    @property
    def log_file(self) -> Path:
        return self.path / "sshd.log"


def plan_hosts(name: str, slot: int, count: int, netns_mode: bool) -> list[HostSpec]:
    limit = MAX_HOSTS_NETNS if netns_mode else MAX_HOSTS_LOCAL
    if not 1 <= count <= limit:
        raise ConsoleError(f"--hosts must be between 1 and {limit} (got {count})")
    hosts = []
    for i in range(1, count + 1):
        hname = host_name(i)
        hdir = lab_dir(name) / "hosts" / hname
        if netns_mode:
            hosts.append(
                HostSpec(
                    name=hname,
                    index=i,
                    address=host_address(slot, i),
                    port=22,
                    deploy_path=HOST_DEPLOY_PATH,
                    http_port=HTTP_PORT,
                    dir=str(hdir),
                    netns=netns_name(name, hname),
                    link=host_link(slot, i),
                    mac=host_mac(slot, i),
                )
            )
        else:
            hosts.append(
                HostSpec(
                    name=hname,
                    index=i,
                    address="127.0.0.1",
                    port=ssh_port(slot, i),
                    deploy_path=str(hdir / "www"),
                    http_port=http_port(slot, i),
                    dir=str(hdir),
                )
            )
    return hosts
