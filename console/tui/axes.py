"""Axis ticks for the metric graphs: values a person reads at a glance, times on the clock.

`value_ticks` puts the Y ticks at 1, 2 or 5 times a power of ten (0, 100, 200, 300,
not 160, 260, 310), covering the data; a series that never moves gets an axis around its
value, and one that is all zero an axis from a labelled 0. `clock_ticks` puts the X ticks
on round minutes of the local clock (10:40, 10:45, ...), as many as the width allows.
"""

from __future__ import annotations

import math
import time

#: Steps between Y ticks, as multiples of a power of ten.
_NICE = (1.0, 2.0, 5.0, 10.0)
#: Seconds between clock ticks, the shortest that fits first.
_CLOCK_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def value_ticks(low: float, high: float, most: int = 5) -> list[float]:
    """At most `most` (at least 2) evenly spaced round values from at or below `low` to at
    or above `high`; the first is the axis minimum, the last its maximum."""
    most = max(2, most)
    if high < low:
        low, high = high, low
    if high == low:
        if low == 0:
            return [0.0, 1.0]
        pad = abs(low) * 0.1
        low, high = low - pad, high + pad
    for nice in _steps(high - low, most):
        first = math.floor(low / nice + 1e-9) * nice
        last = math.ceil(high / nice - 1e-9) * nice
        count = round((last - first) / nice) + 1
        if count <= most:
            if low >= 0 > first:
                first = 0.0  # a count or a rate never goes below 0
            return [_clean(first + i * nice) for i in range(count)]
    raise AssertionError("unreachable: the last step covers the range in 2 ticks")


def _steps(span: float, most: int) -> list[float]:
    """Candidate tick steps for `span`, smallest first."""
    rough = span / (most - 1)
    magnitude = 10 ** math.floor(math.log10(rough))
    return [m * magnitude * k for k in (1, 10, 100) for m in _NICE if m * magnitude * k >= rough * 0.999]


def _clean(value: float) -> float:
    """0.30000000000000004 -> 0.3."""
    return float(f"{value:.10g}")


def tick_label(value: float, step: float) -> str:
    """A Y tick as short as its step allows: `300`, `2.5`, `12.5k`, `3M`."""
    if value == 0:
        return "0"
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size * 10 or (abs(value) >= size and step >= size):
            return f"{value / size:.{_decimals(step / size)}f}{suffix}"
    return f"{value:.{_decimals(step)}f}"


def _decimals(step: float) -> int:
    """Decimals that show every multiple of `step` exactly: 50 -> 0, 2.5 -> 1, 0.25 -> 2."""
    for decimals in range(6):
        if abs(round(step, decimals) - step) < 1e-9 * max(1.0, abs(step)):
            return decimals
    return 6


def clock_ticks(start: float, end: float, most: int) -> list[float]:
    """Unix times of round clock minutes between `start` and `end`: at most `most`, every
    1, 2, 5, 10, 15 or 30 minutes (or hours), whichever is the shortest that fits."""
    if end <= start or most < 1:
        return []
    offset = time.localtime(end).tm_gmtoff  # round in local time, as the labels read
    for step in _CLOCK_STEPS:
        first = math.ceil((start + offset) / step) * step - offset
        ticks: list[float] = [first + i * step for i in range(int((end - first) // step) + 1)]
        if len(ticks) <= most:
            return ticks
    return [end]


def clock_label(ts: float) -> str:
    """`10:45`: a clock tick as the local time of day."""
    return time.strftime("%H:%M", time.localtime(ts))
