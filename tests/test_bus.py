"""The event bus: a subscriber that raises is reported to the others and taken off, and
every later DeployDone names the record it left incomplete."""

from __future__ import annotations

from console.core.errors import ConsoleError
from console.core.events import DeployDone, Event, Notice, PhaseStarted
from console.session.bus import Bus
from support.fleet import Recorder


def failing_after(n: int, error: Exception):
    seen: list[Event] = []

    def subscriber(event: Event) -> None:
        seen.append(event)
        if len(seen) > n:
            raise error

    return subscriber, seen


def test_a_failing_subscriber_is_reported_taken_off_and_named_in_the_result():
    bus, first, last = Bus(), Recorder(), Recorder()
    log, seen = failing_after(1, ConsoleError("/state/deploys/d1.jsonl: cannot write the event log: disk full"))
    bus.subscribe("first", first)
    bus.subscribe("event log", log)
    bus.subscribe("last", last)
    bus(PhaseStarted("d1", phase="update"))
    bus(PhaseStarted("d1", phase="build"))  # the log fails here
    bus(PhaseStarted("d1", phase="sync-assets"))
    bus(DeployDone("d1", result="ok", seconds=1.0, message="all good"))

    assert [type(e) for e in seen] == [PhaseStarted, PhaseStarted]  # nothing after its failure
    for rec in (first, last):  # the others get everything, and a notice in between
        assert [e.kind for e in rec.events] == [
            "phase-started",
            "phase-started",
            "notice",
            "phase-started",
            "deploy-done",
        ]
        notice = rec.of(Notice)[0]
        assert notice.level == "warning" and notice.message == (
            "the event log failed at phase-started and gets no further events: "
            "/state/deploys/d1.jsonl: cannot write the event log: disk full"
        )
        done = rec.of(DeployDone)[0]
        assert (
            done.message
            == "all good; event log incomplete: /state/deploys/d1.jsonl: cannot write the event log: disk full"
        )
    assert bus.settled(DeployDone("d1", result="ok", seconds=1.0)).message.startswith("event log incomplete: ")


def test_a_failure_at_deploy_done_reaches_the_others_and_the_returned_result():
    bus, rec = Bus(), Recorder()
    history, _ = failing_after(0, OSError(28, "No space left on device"))
    bus.subscribe("history", history)
    bus.subscribe("printer", rec)
    done = DeployDone("d1", result="ok", seconds=1.0)
    bus(done)
    assert [e.kind for e in rec.events] == ["deploy-done", "notice"]
    assert rec.of(DeployDone)[0].message == ""  # it failed on this very event
    assert bus.settled(done).message == "history incomplete: OSError: [Errno 28] No space left on device"


def test_a_subscriber_failing_on_a_notice_is_taken_off_too():
    bus, rec = Bus(), Recorder()
    first, _ = failing_after(0, RuntimeError("boom"))

    def notices_fail(event: Event) -> None:
        if isinstance(event, Notice):
            raise RuntimeError("bang")

    bus.subscribe("first", first)
    bus.subscribe("second", notices_fail)
    bus.subscribe("printer", rec)
    bus(PhaseStarted("d1", phase="update"))
    messages = [n.message for n in rec.of(Notice)]
    assert messages == [
        "the first failed at phase-started and gets no further events: RuntimeError: boom",
        "the second failed at notice and gets no further events: RuntimeError: bang",
    ]
    bus(DeployDone("d1", result="ok", seconds=1.0))
    assert (
        rec.of(DeployDone)[0].message == "first incomplete: RuntimeError: boom; second incomplete: RuntimeError: bang"
    )
