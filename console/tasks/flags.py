"""Reading task flags that invoke cannot type: a count given as text, with one-line errors.

invoke casts a flag to the type of its default and fails with a traceback on `--limit abc`;
so a numeric flag defaults to None here (invoke then passes the text as given) and is read
with `whole_number`, which names the flag and what it expects.
"""

from __future__ import annotations

from console.core.errors import ConsoleError
from console.core.text import printable


def whole_number(value: object, flag: str, *, default: int, low: int = 1, high: int | None = None) -> int:
    """`value` (a flag's text, or None for `default`) as an integer from `low` to `high`."""
    if value is None:
        return default
    text = str(value).strip()
    top = f" to {high}" if high is not None else ""
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        raise ConsoleError(f"{flag}: expected a whole number from {low}{top}, got '{printable(text, 40)}'")
    return number


def number(value: object, flag: str, *, default: float) -> float:
    """`value` (a flag's text, or None for `default`) as a positive number."""
    if value is None:
        return default
    text = str(value).strip()
    try:
        result = float(text)
    except ValueError:
        result = -1.0
    if not 0 < result < float("inf"):
        raise ConsoleError(f"{flag}: expected a positive number, got '{printable(text, 40)}'")
    return result
