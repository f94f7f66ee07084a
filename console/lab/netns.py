"""The lab network (root mode): a bridge, the deploy machine's veth pair (and, shaped, its ifb), and one
namespace + veth per host.

All the `ip` work goes through `ip -batch`, one process for the whole lab. Each host gets a fixed
MAC, and the deploy machine holds a permanent neighbour entry for it, so a cut link drops packets
silently (connections hang) instead of failing ARP (connections refused with "no route to host").
"""

from __future__ import annotations

import json
import os
import re
import time

from console.lab import layout, procs, shaping
from console.lab.layout import HostSpec

STATIC_NEIGH_LIMIT = 256
"""Up to this many hosts, every host also holds permanent entries for all others (host-to-host cuts hang too)."""


def up_batch(name: str, slot: int, hosts: list[HostSpec], *, shaped: bool) -> str:
    """The root-namespace `ip -batch` that builds the whole lab network (`shaped`: with the deploy machine's ifb)."""
    br, dv, dp = layout.bridge_link(slot), layout.deploy_link(slot), layout.deploy_peer_link(slot)
    alias = layout.link_alias(name)
    lines = [
        f"link add {br} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
        f"link set {br} alias {alias} addrgenmode none",
        f"link add {dv} type veth peer name {dp}",
        f"link set {dv} alias {alias} addrgenmode none",
        f"link set {dp} alias {alias} addrgenmode none master {br}",
        f"addr add {layout.deploy_address(slot)}/{layout.BLOCK_PREFIX} dev {dv}",
    ]
    if shaped:
        ifb = layout.deploy_ifb(slot)
        lines += [f"link add {ifb} type ifb", f"link set {ifb} alias {alias} addrgenmode none up"]
    for h in hosts:
        lines += [
            f"netns add {h.netns}",
            f"link add {h.link} type veth peer name eth0 address {h.mac} netns {h.netns}",
            f"link set {h.link} alias {alias} addrgenmode none master {br} up",
        ]
    lines += [f"link set {x} up" for x in (br, dp, dv)]
    lines += [f"neigh replace {h.address} lladdr {h.mac} dev {dv} nud permanent" for h in hosts]
    return "\n".join(lines) + "\n"


def host_batch(host: HostSpec, hosts: list[HostSpec]) -> str:
    """The `ip -batch` run inside one host's namespace: its address, links up, neighbours."""
    lines = [
        "link set eth0 addrgenmode none",
        f"addr add {host.address}/{layout.BLOCK_PREFIX} dev eth0",
        "link set lo up",
        "link set eth0 up",
    ]
    if len(hosts) <= STATIC_NEIGH_LIMIT:
        lines += [f"neigh replace {h.address} lladdr {h.mac} dev eth0 nud permanent" for h in hosts if h is not host]
    return "\n".join(lines) + "\n"


def shape_batch(slot: int, hosts: list[HostSpec], rate: str) -> str:
    """Root-namespace `tc -batch`: the deploy machine's link (both ways, on the bridge's side) and the
    bridge side of every host's link."""
    dp, ifb = layout.deploy_peer_link(slot), layout.deploy_ifb(slot)
    lines = shaping.redirect_ingress(dp, ifb)
    lines += [shaping.tc_replace(d, rate) for d in [ifb, dp] + [h.link for h in hosts]]
    return "\n".join(lines) + "\n"


def lab_links(name: str) -> list[str]:
    """Every link on this machine that carries the lab's alias."""
    out = procs.run(["ip", "-j", "link", "show"], check=False).stdout or "[]"
    tag = layout.link_alias(name)
    try:
        return [link["ifname"] for link in json.loads(out) if link.get("ifalias") == tag]
    except ValueError:
        return []


def lab_netns(name: str) -> list[str]:
    """Every network namespace named for the lab."""
    prefix = layout.netns_prefix(name)
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    except OSError:
        return []


def netns_file(netns: str) -> str:
    return f"/run/netns/{netns}"


def teardown(name: str, timeout: float = 10.0) -> None:
    """Delete every namespace and link of the lab (their tc qdiscs and neighbours go with them).

    Deleting the (process-free) namespaces lets the kernel destroy all host veths in one batch,
    which is ~20x faster than deleting them one by one; links still there after that are deleted.
    """
    namespaces = lab_netns(name)
    if namespaces:
        procs.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in namespaces), check=False)
    host_link = re.compile(r"dcl\d+h\d+")
    lines = [f"link del {x}\n" for x in lab_links(name) if not host_link.fullmatch(x)]
    if lines:
        procs.run(["ip", "-force", "-batch", "-"], input="".join(lines), check=False)
    deadline = time.monotonic() + timeout
    while (left := lab_links(name)) and time.monotonic() < deadline:
        time.sleep(0.02)
    if left:
        procs.run(["ip", "-force", "-batch", "-"], input="".join(f"link del {x}\n" for x in left), check=False)
