"""When the console collects cyclic garbage: while the person pauses, not during a key.

CPython's full collection walks every object the collector tracks, and the console holds
many (Textual's and Rich's modules, styles, widgets, cached lines): a full collection took
up to 200 ms, and CPython ran one every second or two while the console was used (27 in a
40 s scripted session on the fake service, 2.6 s in all). A key whose frame waited behind
one was a slow tab switch: the soak's p95 (154 ms, median 38 ms) was the collector's.

So, once the first screen is up:
- everything alive then (modules, styles, the theme, the main screen's widgets) lives for
  the whole session anyway, and is moved out of the collector's sight (`gc.freeze()`);
- CPython's automatic full collection is off (its threshold out of reach); `tick`, on the
  app's timer, runs it instead as soon as CPython would have (`FULL_AFTER` young
  collections since the last full one) once no key or mouse event has come for `PAUSE`
  seconds, and at the latest after `FORCE_AFTER`, for a person who never pauses.

The young generations stay automatic: each takes a few milliseconds. `stop` puts
everything back as it was (the tests and the soak run many apps in one process).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

#: young (generation 1) collections since the last full one before a full one is due:
#: CPython's own default threshold
FULL_AFTER = 10
#: ... and after which it runs even while keys keep coming
FORCE_AFTER = 30
#: seconds without input that count as a pause
PAUSE = 0.5
_OUT_OF_REACH = 2**30


class Collector:
    """The app's garbage collection policy: `start` once the first screen is painted,
    `input` on every key and mouse event, `tick` on a timer, `stop` when the app ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_input = clock()
        self.full = 0  # full collections run by `tick`
        self._threshold: tuple[int, int, int] | None = None

    def start(self) -> None:
        if self._threshold is not None:
            return
        gc.collect()
        gc.freeze()
        self._threshold = gc.get_threshold()
        young, middle, _ = self._threshold
        gc.set_threshold(young, middle, _OUT_OF_REACH)

    def input(self) -> None:
        self.last_input = self.clock()

    def tick(self) -> None:
        if self._threshold is None:
            return
        due = gc.get_count()[2]  # young collections since the last full one
        paused = self.clock() - self.last_input >= PAUSE
        if due >= FORCE_AFTER or (due >= FULL_AFTER and paused):
            gc.collect()
            self.full += 1

    def stop(self) -> None:
        if self._threshold is None:
            return
        gc.set_threshold(*self._threshold)
        gc.unfreeze()
        self._threshold = None
