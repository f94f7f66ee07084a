"""The console's garbage collection policy (console/tui/collector.py): full collections
while the person pauses, everything put back when the app ends. No timing is asserted
(`invoke bench.soak` prints the key-to-paint latency); what runs when is."""

from __future__ import annotations

import gc

import pytest

from console.tui import collector
from console.tui.collector import Collector
from support.pilot import pilot_test, until
from support.tui_fixtures import make_app


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def policy():
    clock = Clock()
    c = Collector(clock)
    before = gc.get_threshold()
    c.start()
    yield c, clock
    c.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def young_collections(n: int) -> None:
    for _ in range(n):
        gc.collect(1)


@pytest.mark.usefixtures("policy")
def test_start_freezes_what_lives_and_takes_the_full_collection_from_cpython():
    assert gc.get_freeze_count() > 0
    young, middle, full = gc.get_threshold()
    assert full > 10**6 and young == 700 and middle == 10


def test_a_due_full_collection_waits_for_a_pause(policy):
    c, clock = policy
    young_collections(collector.FULL_AFTER)
    c.input()
    clock.now += collector.PAUSE / 2
    c.tick()
    assert c.full == 0 and gc.get_count()[2] >= collector.FULL_AFTER
    clock.now += collector.PAUSE
    c.tick()
    assert c.full == 1 and gc.get_count()[2] == 0


def test_nothing_runs_before_it_is_due_and_a_person_who_never_pauses_still_gets_one(policy):
    c, clock = policy
    clock.now += 10
    c.tick()
    assert c.full == 0  # paused, but nothing is due
    young_collections(collector.FORCE_AFTER)
    c.input()
    c.tick()
    assert c.full == 1


@pilot_test
async def test_the_console_collects_by_this_policy_and_puts_cpython_back_when_it_ends():
    before = gc.get_threshold()
    app = make_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: gc.get_freeze_count() > 0)
        assert gc.get_threshold()[2] > 10**6
        started = app.collector.last_input
        await pilot.press("2")
        assert app.collector.last_input > started
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
