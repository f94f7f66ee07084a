"""Deploy markers: a StatsD counter at each deploy's start and end.

Etsy drew `deploys.<environment>` as a vertical line on every graph. `send_marker` sends
`deploys.<environment>:1|c` (and, when the label ends in a plain word such as "ab12cd3 start",
`deploys.<environment>.start:1|c` in the same datagram) to the inventory's StatsD address. It never blocks and never raises:
a deploy never fails because a metric could not be sent. The console draws marker times from
the deploy history, not from this counter.
"""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.config.inventory import Inventory

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def marker_lines(environment: str, label: str = "") -> bytes:
    """The datagram of one marker."""
    env = _UNSAFE.sub("_", environment)
    lines = [f"deploys.{env}:1|c"]
    # only a plain word ("start", "end") becomes a key: a deploy id would make a new key per deploy
    words = label.split()
    if words and words[-1].isalpha() and words[-1].isascii():
        lines.append(f"deploys.{env}.{words[-1].lower()}:1|c")
    return "\n".join(lines).encode()


def send_marker(inventory: Inventory, label: str = "") -> None:
    """Send the deploy marker counter to the inventory's StatsD address; never blocks or raises."""
    host, port = inventory.metrics.statsd
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
        )[0]
    except (OSError, UnicodeError):
        try:  # a name: resolving it may block, so it is done only when it is not a number
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except (OSError, UnicodeError):
            return
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setblocking(False)
            sock.sendto(marker_lines(inventory.environment, label), address)
    except OSError:
        pass
