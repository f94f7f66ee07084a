"""How the console shows times, durations and sizes, compactly, and untrusted text safely."""

from __future__ import annotations

import re

from rich.text import Text

from console.core.text import printable


def plain(text: object, limit: int | None = 200, style: str = "") -> Text:
    """Untrusted text (a commit's subject or author, a person's reason, a host's output) as
    the console shows it: `printable` (control and bidi characters as visible escapes,
    secrets as ***, capped), in a `Text`, so it is never read as markup (`Eve [/]` is a
    name, not a closing tag). Where a widget would read a `str` as markup (a DataTable
    cell, a border title), this is what it gets."""
    return Text(printable(text, limit), style=style)


_FULL_SHA = re.compile(r"\b([0-9a-f]{7})[0-9a-f]{33}\b")


def short_shas(text: str) -> str:
    """`deploy 8b2c6153ece7…` as `deploy 8b2c615`: a line that has a width to keep to (the
    header's lock reason) names commits as the console does everywhere else."""
    return _FULL_SHA.sub(r"\1", text)


def ago(seconds: float) -> str:
    """`42s`, `5m`, `3h`, `2d`: how long ago, compactly."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float | None) -> str:
    """`1m 52s` or `9.3s`."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def estimate(seconds: float) -> str:
    """`about 40s`, `about 1m 10s`: a guess, so in whole seconds (10 s steps past a minute)."""
    if seconds < 60:
        return f"about {max(1, round(seconds))}s"
    return f"about {duration(round(seconds / 10) * 10)}"


def human_bytes(n: int) -> str:
    """`0 B`, `12.3 KB`, `4.5 MB`."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
