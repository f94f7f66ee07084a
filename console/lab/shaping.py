"""Link shaping with tc tbf (this kernel has tbf and htb, not netem): rates and the commands for them."""

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


def tc_delete(dev: str) -> str:
    return f"qdisc del dev {dev} root"
