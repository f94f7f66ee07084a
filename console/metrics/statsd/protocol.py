"""The StatsD line protocol: `name:VALUE|TYPE[|@RATE][|#tags]`, several lines per packet.

TYPE is `c` (counter), `ms` or `h` (timer), `g` (gauge; a signed value like `+3` changes
it). Sets (`s`) are not kept. Lines that do not parse are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_TYPES = {"c": "c", "ms": "ms", "h": "ms", "g": "g"}


@dataclass(frozen=True)
class Sample:
    """One parsed StatsD line."""

    key: str
    type: str  # "c", "ms" or "g"
    value: float
    rate: float = 1.0
    delta: bool = False  # a gauge change (+3, -2) rather than a new value


def parse_line(line: str) -> Sample | None:
    """The sample one line describes, or None for a line that is garbage or not kept."""
    line = line.strip()
    name, sep, rest = line.partition(":")
    if not sep or not name or any(c.isspace() or c in "|@" for c in name):
        return None
    fields = rest.split("|")
    if len(fields) < 2:
        return None
    text, kind = fields[0].strip(), _TYPES.get(fields[1].strip())
    if kind is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    rate = 1.0
    for extra in fields[2:]:
        if extra.startswith("@"):
            try:
                rate = float(extra[1:])
            except ValueError:
                return None
            if not (0 < rate <= 1):
                return None
        elif not extra.startswith("#"):  # dogstatsd tags are ignored, anything else is garbage
            return None
    delta = kind == "g" and text[:1] in "+-"
    return Sample(name, kind, value, rate, delta)


def parse_packet(data: bytes) -> list[Sample]:
    """Every sample in one datagram (lines separated by newlines)."""
    text = data.decode("utf-8", errors="replace")
    return [s for s in map(parse_line, text.split("\n")) if s is not None]
