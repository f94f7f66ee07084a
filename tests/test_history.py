"""The deploy history: real SQLite files, real threads and processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from console.core.errors import ConsoleError
from console.core.events import (
    DeployDone,
    DeployStarted,
    HostDone,
    HostFailed,
    HostProgress,
    PhaseDone,
    PhaseStarted,
    WatchVerdict,
)
from console.state.files import pid_alive
from console.state.history import History

HOSTS = ("web001", "web002", "web003")


def started(
    deploy_id: str,
    *,
    ts: float,
    revision: str = "ef4501a" + "0" * 33,
    previous: str | None = "ab12cd3" + "0" * 33,
    hosts: tuple[str, ...] = HOSTS,
    action: str = "deploy",
    release: str | None = None,
    pid: int = 0,
    environment: str = "lab",
    override: str | None = None,
    ref: str | None = None,
) -> DeployStarted:
    return DeployStarted(
        deploy_id,
        environment=environment,
        user="alice",
        release=release or deploy_id,
        revision=revision,
        previous_revision=previous,
        hosts=hosts,
        chunks=(hosts,),
        phases=("sync-assets", "sync-code", "activate"),
        strategy="chunked",
        action=action,
        commits=3,
        override=override,
        pid=pid,
        ref=ref,
        ts=ts,
    )


def run_deploy(
    h: History,
    deploy_id: str,
    *,
    ts: float,
    failed: dict[str, str] | None = None,
    result: str | None = None,
    hosts: tuple[str, ...] = HOSTS,
    **kw,
) -> None:
    """A whole deploy's events: every host through every phase, `failed` ones fail in sync-code."""
    if failed is None:
        failed = {}
    h.record(started(deploy_id, ts=ts, hosts=hosts, **kw))
    for phase in ("sync-assets", "sync-code", "activate"):
        h.record(PhaseStarted(deploy_id, phase=phase, hosts=hosts, ts=ts + 0.1))
        for host in hosts:
            if host in failed and phase == "sync-code":
                h.record(HostFailed(deploy_id, phase=phase, host=host, reason=failed[host], exit_code=1, ts=ts + 0.2))
            elif host in failed and phase == "activate":
                continue
            else:
                h.record(HostProgress(deploy_id, phase=phase, host=host, ts=ts + 0.1))
                h.record(HostDone(deploy_id, phase=phase, host=host, seconds=0.5, bytes=100, ts=ts + 0.2))
        h.record(PhaseDone(deploy_id, phase=phase, ok=len(hosts), failed=0, seconds=0.6, ts=ts + 0.3))
    ok = tuple(x for x in hosts if x not in failed)
    result = result or ("partial" if failed else "ok")
    h.record(
        DeployDone(deploy_id, result=result, seconds=1.0, hosts_ok=ok, hosts_failed=tuple(failed.items()), ts=ts + 1)
    )


def test_files_are_private_and_wal(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = os.umask(0o022)
    try:
        h = History(state)
        run_deploy(h, "20260101T000000Z-ef4501a", ts=1000.0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("history.sqlite", "history.sqlite-wal", "history.sqlite-shm"):
        path = state / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    db = sqlite3.connect(state / "history.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_whole_deploy_is_recorded(tmp_path: Path) -> None:
    h = History(tmp_path)
    run_deploy(h, "d1", ts=1000.0, failed={"web002": "exit 1: rsync: connection reset"}, override="hotfix")
    h.record(
        WatchVerdict(
            "d1",
            metric="checkouts",
            verdict="ok",
            summary="checkouts/min 41 → 40, -2%",
            baseline=41,
            current=40,
            change=-0.02,
            final=True,
            ts=1100.0,
        )
    )
    d = h.get("d1")
    assert (d.environment, d.action, d.user, d.override, d.result, d.state) == (
        "lab",
        "deploy",
        "alice",
        "hotfix",
        "partial",
        "partial",
    )
    assert d.previous_revision.startswith("ab12cd3") and d.revision.startswith("ef4501a")
    assert (d.started, d.ended, d.seconds, d.commits, d.host_count) == (1000.0, 1001.0, 1.0, 3, 3)
    assert d.phases == {"sync-assets": 0.6, "sync-code": 0.6, "activate": 0.6}
    hosts = {x.host: x for x in d.hosts}
    assert hosts["web001"].state == "switching" and hosts["web001"].ok
    assert hosts["web001"].seconds == {"sync-assets": 0.5, "sync-code": 0.5, "activate": 0.5}
    assert hosts["web001"].bytes == 300
    bad = hosts["web002"]
    assert (bad.state, bad.phase, bad.exit_code, bad.ok) == ("failed", "sync-code", 1, False)
    assert bad.reason == "exit 1: rsync: connection reset"
    assert bad.seconds == {"sync-assets": 0.5, "sync-code": 0.0}
    assert d.failed_hosts == {"web002": "exit 1: rsync: connection reset"}
    assert [v.metric for v in d.verdicts] == ["checkouts"] and d.verdicts[0].final
    # --json: everything serialises
    data = json.loads(json.dumps(h.to_json()))
    assert data[0]["id"] == "d1" and data[0]["hosts"][1]["state"] == "failed"
    with pytest.raises(ConsoleError, match="no deploy 'nope'"):
        h.get("nope")


def test_record_from_other_threads(tmp_path: Path) -> None:
    h = History(tmp_path)
    h.record(started("d1", ts=1000.0, hosts=tuple(f"web{i:03}" for i in range(40))))

    def work(i: int) -> None:
        h.record(HostDone("d1", phase="sync-code", host=f"web{i:03}", seconds=0.1, ts=1001.0))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(h.get("d1").hosts) == 40


CHILD = """
import os, signal, sys
from console.state.history import History
from console.core.events import DeployStarted, HostDone, HostFailed
h = History(sys.argv[1])
hosts = tuple(f"web{i:03}" for i in range(10))
h.record(DeployStarted("d1", environment="lab", user="bob", release="r1", revision="c" * 40,
    previous_revision=None, hosts=hosts, chunks=(hosts,), phases=("sync-code",), strategy="chunked",
    pid=os.getpid(), ts=1000.0))
h.record(HostDone("d1", phase="sync-code", host="web000", seconds=1.5))
h.record(HostFailed("d1", phase="sync-code", host="web001", reason="timeout after 120 s"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_deploy_leaves_a_truthful_partial_record(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=20)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    h = History(tmp_path)
    d = h.get("d1")
    assert d.result is None and d.ended is None and d.state == "interrupted"
    assert {x.host: x.state for x in d.hosts} == {"web000": "staged", "web001": "failed"}
    assert h.live_revision() is None  # an unfinished deploy is not live
    assert h.last_deploy().id == "d1"


def test_a_second_history_object_continues_a_deploy(tmp_path: Path) -> None:
    """Hosts are merged with what is stored when this History did not see the start."""
    History(tmp_path).record(started("d1", ts=1000.0))
    first = History(tmp_path)
    first.record(HostDone("d1", phase="sync-assets", host="web001", seconds=0.5, bytes=10, ts=1001.0))
    second = History(tmp_path)
    second.record(HostDone("d1", phase="sync-code", host="web001", seconds=0.7, bytes=5, ts=1002.0))
    second.record(
        DeployDone(
            "d1",
            result="partial",
            seconds=3.0,
            hosts_ok=("web001",),
            hosts_failed=(("web003", "never answered"),),
            ts=1003.0,
        )
    )
    hosts = {x.host: x for x in second.get("d1").hosts}
    assert hosts["web001"].seconds == {"sync-assets": 0.5, "sync-code": 0.7}
    assert (hosts["web001"].bytes, hosts["web001"].state, hosts["web001"].ok) == (15, "staged", True)
    assert (hosts["web003"].state, hosts["web003"].reason) == ("failed", "never answered")
    assert second.failed_hosts_of_last() == ["web003"]


def test_running_deploy_state(tmp_path: Path) -> None:
    h = History(tmp_path)
    h.record(started("d1", ts=1000.0, pid=os.getpid()))
    assert h.get("d1").state == "running"
    assert pid_alive(os.getpid()) and not pid_alive(0)


def test_live_revision_and_releases(tmp_path: Path) -> None:
    h = History(tmp_path)
    assert h.live_revision() is None and h.last_deploy() is None and h.releases_deployed() == []
    run_deploy(h, "d1", ts=1000.0, revision="a" * 40, release="r1")
    run_deploy(h, "d2", ts=2000.0, revision="b" * 40, release="r2", failed={"web001": "x"})  # partial: live
    run_deploy(h, "d3", ts=3000.0, revision="c" * 40, release="r3", result="failed")
    assert h.live_revision() == "b" * 40
    run_deploy(h, "d4", ts=4000.0, revision="a" * 40, release="r1", action="switch")
    assert h.live_revision() == "a" * 40
    assert h.releases_deployed() == [("r1", "a" * 40), ("r2", "b" * 40)]
    assert [d.id for d in h.deploys()] == ["d4", "d3", "d2", "d1"]
    assert [d.id for d in h.deploys(limit=2)] == ["d4", "d3"]
    assert h.last_deploy().id == "d4" and h.last_deploy(action="deploy").id == "d3"
    run_deploy(h, "e1", ts=5000.0, revision="e" * 40, environment="prod")
    assert h.live_revision(environment="lab") == "a" * 40
    assert h.live_revision() == "e" * 40


def test_failed_hosts_of_last(tmp_path: Path) -> None:
    h = History(tmp_path)
    assert h.failed_hosts_of_last() == []
    run_deploy(h, "d1", ts=1000.0, failed={"web002": "exit 1", "web003": "timeout"})
    assert h.failed_hosts_of_last() == ["web002", "web003"]
    # --only web002 succeeds: web003 still needs catching up
    run_deploy(h, "d2", ts=2000.0, hosts=("web002",))
    assert h.failed_hosts_of_last() == ["web003"]
    # --only failed, and web003 fails again
    run_deploy(h, "d3", ts=3000.0, hosts=("web003",), failed={"web003": "disk full"})
    assert h.failed_hosts_of_last() == ["web003"]
    run_deploy(h, "d4", ts=4000.0)
    assert h.failed_hosts_of_last() == []


def test_markers_verdicts_and_audit(tmp_path: Path) -> None:
    h = History(tmp_path)
    run_deploy(h, "d1", ts=1000.0, revision="a" * 40)
    run_deploy(h, "d2", ts=2000.0, revision="b" * 40, failed={"web001": "x"})
    h.record(started("d3", ts=3000.0, revision="c" * 40))  # refused on every host: nothing switched
    h.record(DeployDone("d3", result="failed", seconds=2.0, hosts_failed=(("web001", "x"),), ts=3002.0))
    run_deploy(h, "d4", ts=4000.0, revision="a" * 40, action="switch")
    h.record(started("d5", ts=5000.0, revision="e" * 40))  # running, nothing switched yet: no line
    assert [(m.deploy_id, m.kind, m.ts, m.label) for m in h.markers(1500.0)] == [
        ("d2", "deploy", 2000.2, "bbbbbbb alice partial"),  # at its first switch (HostDone of activate)
        ("d3", "failed", 3002.0, "ccccccc alice failed"),
        ("d4", "switch", 4000.2, "aaaaaaa alice ok"),
    ]
    assert [m.deploy_id for m in h.markers(0)] == ["d1", "d2", "d3", "d4"]
    assert h.get("d2").activated == 2000.2 and h.get("d3").activated is None
    for final in (False, True):
        h.record(
            WatchVerdict(
                "d2",
                metric="checkouts",
                verdict="degraded",
                summary="41 → 28",
                dry_run=True,
                final=final,
                ts=2100.0 + final,
            )
        )
    assert [v.final for v in h.verdicts("d2")] == [False, True]
    # the list of deploys carries their verdicts too, as one deploy does (issue 13, item 5)
    assert {d.id: [v.final for v in d.verdicts] for d in h.deploys()} == {
        "d5": [],
        "d4": [],
        "d3": [],
        "d2": [False, True],
        "d1": [],
    }
    assert [v.dry_run for v in h.verdicts("d2", final_only=True)] == [True]
    h.add_audit("lab", "bob", "force-unlock", "took over alice's lock", ts=10.0)
    h.add_audit("prod", "carol", "lock", "freeze", ts=20.0)
    assert [a.who for a in h.audit()] == ["carol", "bob"]
    assert [a.action for a in h.audit(environment="lab")] == ["force-unlock"]
    assert h.audit()[0].to_dict()["time"]


def test_the_list_of_deploys_reads_every_verdict_in_one_query(tmp_path: Path) -> None:
    h = History(tmp_path)
    for i in range(30):
        run_deploy(h, f"d{i:02}", ts=1000.0 + i)
        h.record(WatchVerdict(f"d{i:02}", metric="checkouts", verdict="ok", summary="41 → 40", ts=1000.5 + i))
    reads: list[str] = []
    real_read = h._read
    h._read = lambda sql, params=(): reads.append(sql) or real_read(sql, params)
    records = h.deploys(50)
    assert len(records) == 30 and all(len(r.verdicts) == 1 for r in records)
    assert len(reads) == 2  # the deploys, then the verdicts of all of them


WRITER = """
import sys
from console.state.history import History
from console.core.events import DeployStarted, DeployDone
h = History(sys.argv[1])
for i in range(40):
    d = f"{sys.argv[2]}-{i:03}"
    h.record(DeployStarted(d, environment="lab", user="u", release=d, revision="c" * 40,
        previous_revision=None, hosts=("w",), chunks=(("w",),), phases=(), strategy="chunked"))
    h.record(DeployDone(d, result="ok", seconds=0.1, hosts_ok=("w",)))
"""


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    History(tmp_path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name], stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err.decode()
    deploys = History(tmp_path).deploys(limit=1000)
    assert len(deploys) == 80 and all(d.result == "ok" for d in deploys)


def test_engine_modules_import_no_textual() -> None:
    code = textwrap.dedent("""
        import sys
        import console.state.lock, console.state.history, console.state.eventlog, console.session.notify
        assert "textual" not in sys.modules, sorted(m for m in sys.modules if m.startswith("textual"))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


AUDIT_WRITER = """
import sys
from console.state.history import History
h = History(sys.argv[1])
for i in range(300):
    h.add_audit("lab", "other", "lock", "x" * 200)
h.close()
"""


def test_a_second_history_in_the_process_never_breaks_an_open_writer(tmp_path: Path) -> None:
    """The session's History keeps its write connection open while the lock opens a
    History of its own and other processes write: the database must stay sound."""
    session = History(tmp_path)
    session.add_audit("lab", "alice", "lock", "first")  # its write connection is open now
    History(tmp_path).add_audit("lab", "alice", "unlock", "second")  # as Lock._audit does
    subprocess.run([sys.executable, "-c", AUDIT_WRITER, str(tmp_path)], check=True, timeout=60)
    for i in range(300):
        session.add_audit("lab", "alice", "lock", str(i))
    session.close()
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(History(tmp_path).audit(limit=1000)) == 602


#: The deploys table of schema version 1, as released (its revision columns had other names).
DEPLOYS_V1 = """
CREATE TABLE deploys (
    id TEXT PRIMARY KEY, environment TEXT NOT NULL, action TEXT NOT NULL, user TEXT NOT NULL, override TEXT,
    release TEXT, from_revision TEXT, to_revision TEXT, ref TEXT, strategy TEXT,
    rolling INTEGER NOT NULL DEFAULT 0, commits INTEGER NOT NULL DEFAULT 0, hosts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER, started REAL NOT NULL, ended REAL, seconds REAL, result TEXT,
    message TEXT NOT NULL DEFAULT '', phases TEXT NOT NULL DEFAULT '{}'
);
"""


def test_a_version_1_history_is_upgraded_in_place(tmp_path: Path) -> None:
    """A history.sqlite written before the revision columns took the events' names keeps
    its deploys; two processes opening it at once upgrade it once."""
    from console.state import history

    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(DEPLOYS_V1 + history._SCHEMA)  # the other tables did not change
        db.execute(
            "INSERT INTO deploys (id, environment, action, user, release, from_revision, to_revision, started, result) "
            "VALUES ('old', 'lab', 'deploy', 'alice', 'old', ?, ?, 1000.0, 'ok')",
            ("a" * 40, "b" * 40),
        )
        db.execute("PRAGMA user_version=1")
    db.close()
    opened: list[History] = []
    threads = [threading.Thread(target=lambda: opened.append(History(tmp_path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(opened) == 2
    h = History(tmp_path)
    old = h.get("old")
    assert (old.previous_revision, old.revision, old.ref) == ("a" * 40, "b" * 40, None)
    assert h.live_revision() == "b" * 40
    run_deploy(h, "new", ts=2000.0, previous="b" * 40, ref="v1.2")
    assert (h.get("new").previous_revision, h.get("new").ref) == ("b" * 40, "v1.2")
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION == 3
        columns = {row[1] for row in db.execute("PRAGMA table_info(deploys)")}
    db.close()
    assert {"previous_revision", "revision", "activated"} <= columns and not {"from_revision", "to_revision"} & columns
