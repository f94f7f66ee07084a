"""The per-deploy event log: real files, a real writer process killed mid-stream."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from console.core.errors import ConsoleError
from console.core.events import DeployDone, DeployStarted, HostDone, Notice, PhaseStarted, to_json
from console.state.eventlog import EventLog


def started(deploy_id: str, pid: int) -> DeployStarted:
    hosts = ("web001", "web002")
    return DeployStarted(
        deploy_id,
        environment="lab",
        user="alice",
        release=deploy_id,
        revision="e" * 40,
        previous_revision=None,
        hosts=hosts,
        chunks=(hosts,),
        phases=("sync-code",),
        strategy="chunked",
        pid=pid,
    )


def test_write_read_roundtrip_private(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "state")
    write = log.writer("20260101T000000Z-eeeeeee")
    events = [
        started("20260101T000000Z-eeeeeee", os.getpid()),
        HostDone("20260101T000000Z-eeeeeee", phase="sync-code", host="web001", seconds=0.2, message="ünïcode"),
        DeployDone("20260101T000000Z-eeeeeee", result="ok", seconds=1.0, hosts_ok=("web001", "web002")),
    ]
    for e in events:
        write(e)
    write.close()
    assert log.read("20260101T000000Z-eeeeeee") == events
    path = log.path("20260101T000000Z-eeeeeee")
    assert path.read_text().count("\n") == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    with pytest.raises(ConsoleError, match="bad deploy id"):
        log.path("../../etc/passwd")
    with pytest.raises(ConsoleError, match="no event log for deploy nope"):
        log.read("nope")


def test_latest_and_running(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    assert log.latest() is None
    for deploy_id in ("20260101T100000Z-aaaaaaa", "20260102T090000Z-bbbbbbb", "20251231T230000Z-ccccccc"):
        log.writer(deploy_id)(started(deploy_id, os.getpid()))
    assert log.latest() == "20260102T090000Z-bbbbbbb"
    assert log.ids()[0] == "20251231T230000Z-ccccccc"
    assert log.running("20260102T090000Z-bbbbbbb")
    log.writer("20260102T090000Z-bbbbbbb")(DeployDone("20260102T090000Z-bbbbbbb", result="ok", seconds=1))
    assert not log.running("20260102T090000Z-bbbbbbb")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    log.writer("20260103T000000Z-ddddddd")(started("20260103T000000Z-ddddddd", dead.pid))
    assert not log.running("20260103T000000Z-ddddddd")


def test_running_reads_only_what_was_written_since_it_last_asked(tmp_path: Path) -> None:
    """The console asks every few seconds; a line caught half-written is read whole later,
    and a log that is not the one read before (shorter: replaced) is read afresh."""
    log = EventLog(tmp_path)
    log.writer("d1")(started("d1", os.getpid()))
    assert log.running("d1")
    done = (to_json(DeployDone("d1", result="ok", seconds=1)) + "\n").encode()
    with open(log.path("d1"), "ab") as f:
        f.write(done[:10])
        f.flush()
        assert log.running("d1")  # the half line is not an event yet
        f.write(done[10:])
    assert not log.running("d1")
    log.path("d1").write_text(to_json(started("d1", os.getpid())) + "\n")
    assert log.running("d1")


def test_bad_lines_become_warnings_naming_file_and_line(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.writer("d1")(started("d1", os.getpid()))
    path = log.path("d1")
    with open(path, "a") as f:
        f.write("not json\n")
        f.write('{"event": "from-the-future", "deploy_id": "d1"}\n')
        f.write('{"event": "host-done", "deploy_id": "d1"}\n')  # missing fields
        f.write("\n")
        f.write(to_json(PhaseStarted("d1", phase="sync-code")) + "\n")
        f.write('{"event": "phase-done", "deploy_id": "d1", "pha')  # still being written
    events = log.read("d1")
    assert isinstance(events[0], DeployStarted) and isinstance(events[-1], PhaseStarted)
    warnings = [e for e in events if isinstance(e, Notice)]
    assert [w.level for w in warnings] == ["warning"] * 3
    assert warnings[0].message.startswith(f"{path}:2: skipped a line: not a deploy event")
    assert warnings[1].message == f"{path}:3: skipped a line: unknown event kind 'from-the-future'"
    assert warnings[2].message.startswith(f"{path}:4: skipped a line: not a deploy event (TypeError")
    assert len(events) == 5


def test_follow_waits_for_whole_lines_and_ends_on_done(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    write = log.writer("d1")
    write(started("d1", os.getpid()))
    seen: list[object] = []

    def writer() -> None:
        line = (to_json(HostDone("d1", phase="sync-code", host="web001", seconds=0.1)) + "\n").encode()
        with open(log.path("d1"), "ab", buffering=0) as f:
            f.write(line[:10])  # a torn write: the reader must wait for the rest
            time.sleep(0.3)
            f.write(line[10:])
        time.sleep(0.2)
        write(DeployDone("d1", result="ok", seconds=1.0))

    t = threading.Thread(target=writer)
    t.start()
    start = time.monotonic()
    for event in log.follow("d1", poll=0.02):
        seen.append(event)
    t.join()
    assert [type(e).__name__ for e in seen] == ["DeployStarted", "HostDone", "DeployDone"]
    assert 0.4 < time.monotonic() - start < 5


def test_follow_stops_when_asked(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.writer("d1")(started("d1", os.getpid()))
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert [type(e).__name__ for e in log.follow("d1", poll=0.02, stop=stop)] == ["DeployStarted"]


WRITER = """
import os, sys, time
from console.state.eventlog import EventLog
from console.core.events import DeployStarted, HostProgress
log = EventLog(sys.argv[1])
write = log.writer("d1")
hosts = tuple(f"web{i:03}" for i in range(50))
write(DeployStarted("d1", environment="lab", user="bob", release="d1", revision="e" * 40,
    previous_revision=None, hosts=hosts, chunks=(hosts,), phases=("sync-code",), strategy="chunked",
    pid=os.getpid()))
print("started", flush=True)
i = 0
while True:
    write(HostProgress("d1", phase="sync-code", host=hosts[i % 50], message="x" * (i % 300), bytes=i))
    i += 1
    if sys.argv[2] == "slow":
        time.sleep(0.001)
"""


@pytest.mark.parametrize("pace", ["slow", "fast"])
def test_follow_ends_with_a_died_notice_when_the_writer_is_sigkilled(tmp_path: Path, pace: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), pace], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "started\n", proc.stderr.read()
    log = EventLog(tmp_path)
    assert log.running("d1")
    seen = []
    start = time.monotonic()
    for event in log.follow("d1", poll=0.02):
        seen.append(event)
        if len(seen) == 50:
            proc.send_signal(signal.SIGKILL)  # not reaped: the follower must see a zombie as dead
        assert time.monotonic() - start < 15
    proc.wait(timeout=10)
    last = seen[-1]
    assert isinstance(last, Notice) and last.level == "error"
    assert last.message == f"the deploy process {proc.pid} died without finishing"
    # every line the killed writer left is whole: no warnings anywhere
    assert not [e for e in seen[:-1] if isinstance(e, Notice)]
    events = log.read("d1")
    assert len(events) == len(seen) - 1 and not [e for e in events if isinstance(e, Notice)]
    assert not log.running("d1")


def test_concurrent_writer_threads_never_interleave(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    writers = [log.writer("d1") for _ in range(4)]

    def spam(w, n: int) -> None:
        for i in range(300):
            w(HostDone("d1", phase="sync-code", host=f"web{n}", seconds=i, message="y" * 2000))

    threads = [threading.Thread(target=spam, args=(w, n)) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = log.read("d1")
    assert len(events) == 1200 and not [e for e in events if isinstance(e, Notice)]
