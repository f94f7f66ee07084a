"""Link shaping with tc tbf (this kernel has tbf and htb, not netem): rates and the commands for them.

Every queue holds 200 ms of traffic. The deploy machine's link is shaped both ways where
it meets the bridge: what it sends goes through an ifb there, and its own end has no
queue. A queue on its own end (as a host's `eth0` has) refuses packets inside its own
kernel, and Linux answers such a local drop on a connection with nothing in flight by
trying again every 0.5 s, counting the tries, and aborting the connection silently after
`tcp_retries2` (15) of them. With 200 connections sharing 29 KB at 1 Mbit/s, the push
host's kernel aborted 1 to 33 of them a deploy (`TCPAbortOnTimeout`, no FIN or RST on
the wire), which looked like hosts closing them. On the bridge's side a refused packet is
lost on the wire, as on a real network, and TCP sends it again.
"""

from __future__ import annotations

import re

from console.core.errors import ConsoleError

_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)(bit|bps)$", re.IGNORECASE)
_MULT = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_rate(rate: str) -> int:
    """`10mbit`, `500kbit`, `1gbit`, `2mbps` (tc's units: bit = bits/s, bps = bytes/s) -> bytes per second."""
    m = _RATE_RE.match(str(rate).strip())
    if not m:
        raise ConsoleError(
            f"rate {rate!r} is not valid: use a number and a tc unit, e.g. 10mbit, 500kbit, 1gbit, 2mbps"
        )
    value = float(m.group(1)) * _MULT[m.group(2).lower()]
    per_sec = value / 8 if m.group(3).lower() == "bit" else value
    if per_sec < 1000:
        raise ConsoleError(f"rate {rate!r} is too low: at least 8kbit")
    return int(per_sec)


def tbf_args(rate: str) -> list[str]:
    """`qdisc replace ... root tbf ...` arguments after `dev X` (burst: 20 ms of traffic, at least 4 KiB)."""
    per_sec = parse_rate(rate)
    burst = max(4096, per_sec // 50)
    return ["root", "tbf", "rate", rate.strip().lower(), "burst", str(burst), "latency", "200ms"]


def tc_replace(dev: str, rate: str) -> str:
    """One line for `tc -batch`."""
    return " ".join(["qdisc", "replace", "dev", dev, *tbf_args(rate)])


def redirect_ingress(dev: str, ifb: str) -> list[str]:
    """`tc -batch` lines that send everything arriving on `dev` through `ifb`, whose root qdisc then
    shapes it: a link shaped where it arrives rather than where it leaves."""
    return [
        f"qdisc add dev {dev} handle ffff: ingress",
        f"filter add dev {dev} parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev {ifb}",
    ]
