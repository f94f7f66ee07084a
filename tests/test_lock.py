"""The deploy lock: real files, real processes, real SIGKILLs."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.core.errors import ConsoleError
from console.core.text import local_time
from console.state.history import History
from console.state.lock import Lock

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"

HOLDER = """
import os, sys, time
from console.state.lock import Lock
lock = Lock(sys.argv[1], "lab")
if sys.argv[2] == "acquire":
    lock.acquire("bob", "deploying ef4501a", deploy_id="d1", pid=os.getpid())
else:
    lock.update(deploy_id="d1", pid=os.getpid())
print("held", flush=True)
time.sleep(60)
"""


def hold(state: Path, how: str = "acquire") -> subprocess.Popen[str]:
    """A child process that takes (or takes over) the lock and sleeps holding it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state), how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    assert line == "held\n", proc.stderr.read()
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def test_acquire_then_a_second_acquire_fails_at_once(tmp_path: Path) -> None:
    lock = Lock(tmp_path / "state", "lab")
    assert lock.status() is None
    info = lock.acquire("alice", "deploying ab12cd3", deploy_id="d1", pid=os.getpid())
    assert (info.who, info.reason, info.pid, info.deploy_id, info.stale) == (
        "alice",
        "deploying ab12cd3",
        os.getpid(),
        "d1",
        False,
    )
    assert lock.status() == info
    t = time.monotonic()
    with pytest.raises(ConsoleError) as err:
        Lock(tmp_path / "state", "lab").acquire("bob", "deploying ef4501a", pid=12345)
    assert time.monotonic() - t < 1
    assert re.fullmatch(f"lab: locked by alice since {TIME}: deploying ab12cd3", str(err.value))
    assert local_time(info.since) in str(err.value)
    # another environment in the same state directory is independent
    Lock(tmp_path / "state", "prod").acquire("bob", "deploying", pid=os.getpid())
    # the files are private
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    for path in (tmp_path / "state").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert json.loads(lock.path.read_text())["who"] == "alice"


def test_reading_a_lock_opens_no_database(tmp_path: Path) -> None:
    """`invoke status` and the console read the lock often: that needs no SQLite; the
    history opens at the first audit entry."""
    code = (
        "import sys\n"
        "from console.state.lock import Lock\n"
        "lock = Lock(sys.argv[1], 'lab')\n"
        "assert lock.status() is None\n"
        "loaded = sorted(m for m in ('sqlite3', 'console.state.history') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "lock.acquire('alice', 'freeze')\n"
        "assert 'console.state.history' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=30)
    assert [a.action for a in History(tmp_path).audit()] == ["lock"]


def test_release_rules_and_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Path] = []
    real_init = History.__init__

    def counting_init(self: History, state_dir: Path, **kw: float) -> None:
        opened.append(state_dir)
        real_init(self, state_dir, **kw)

    monkeypatch.setattr(History, "__init__", counting_init)
    lock = Lock(tmp_path, "lab")
    assert lock.release("alice") is None  # nothing to release
    lock.acquire("alice", "deploying", pid=os.getpid())
    with pytest.raises(ConsoleError, match="it is alice's lock: release it with invoke unlock --force"):
        lock.release("bob")
    assert lock.release("alice").who == "alice"  # the deploying process releases its own lock
    assert lock.status() is None
    # held on purpose: stops deploys until released
    lock.acquire("carol", "investigating checkout errors")
    with pytest.raises(ConsoleError, match=f"locked by carol since {TIME}: investigating checkout errors$"):
        lock.acquire("dave", "deploying", pid=os.getpid())
    assert lock.release("carol", force=False).reason == "investigating checkout errors"
    lock.acquire("carol", "freeze")
    assert lock.release("erin", force=True).who == "carol"
    assert opened == [tmp_path]  # one audit store for every entry
    audit = History(tmp_path).audit(environment="lab")
    assert [a.action for a in audit] == ["force-unlock", "lock", "unlock", "lock", "unlock", "lock"]
    assert audit[0].who == "erin"
    assert re.fullmatch(
        f"took over the lock of carol since {TIME} \\(reason: freeze\\); it is carol's lock", audit[0].detail
    )
    with pytest.raises(ConsoleError, match="needs a reason"):
        lock.acquire("x", "  ")


def test_a_deploy_releases_only_its_own_lock(tmp_path: Path) -> None:
    lock = Lock(tmp_path, "lab")
    lock.acquire("alice", "deploying", pid=os.getpid())
    lock.release("bob", force=True)  # bob forced alice's deploy lock away ...
    lock.acquire("bob", "hotfix", pid=12345678)  # ... and holds it now
    assert lock.release("alice", pid=os.getpid()) is None  # alice's deploy ends: bob's lock stays
    assert lock.status().who == "bob"
    lock.release("bob", force=True)
    lock.acquire("alice", "deploying", pid=os.getpid())
    assert lock.release("alice", pid=os.getpid()).who == "alice"
    assert lock.status() is None


def test_a_live_process_lock_needs_force_even_for_its_owner(tmp_path: Path) -> None:
    proc = hold(tmp_path)
    try:
        lock = Lock(tmp_path, "lab")
        assert lock.status().pid == proc.pid and not lock.status().stale
        with pytest.raises(ConsoleError, match=f"its process {proc.pid} is still running"):
            lock.release("bob")
        assert lock.release("bob", force=True).pid == proc.pid
        assert "process" in History(tmp_path).audit()[0].detail
    finally:
        kill(proc)


def test_sigkilled_holder_leaves_a_stale_lock_that_can_be_taken_over(tmp_path: Path) -> None:
    proc = hold(tmp_path)
    kill(proc)
    lock = Lock(tmp_path, "lab")
    info = lock.status()
    assert info.stale and info.pid == proc.pid and info.who == "bob"
    with pytest.raises(ConsoleError) as err:
        lock.acquire("alice", "deploying", pid=os.getpid())
    assert re.fullmatch(
        f"lab: stale lock held by bob since {TIME} \\(process {proc.pid} is gone\\): deploying ef4501a; "
        "take it over with invoke unlock --force",
        str(err.value),
    )
    with pytest.raises(ConsoleError, match=r"stale lock held by bob .* take it over with invoke unlock --force$"):
        lock.release("alice")
    assert lock.release("alice", force=True).stale
    entry = History(tmp_path).audit()[0]
    assert (entry.who, entry.action) == ("alice", "force-unlock")
    assert f"stale, process {proc.pid} on" in entry.detail and "deploy d1" in entry.detail
    lock.acquire("alice", "deploying", pid=os.getpid())


def test_the_detached_child_takes_over_the_starters_lock(tmp_path: Path) -> None:
    lock = Lock(tmp_path, "lab")
    lock.acquire("bob", "deploying ef4501a", deploy_id="d1", pid=os.getpid())
    child = hold(tmp_path, "update")
    try:
        info = lock.status()
        assert (info.pid, info.deploy_id, info.who, info.stale) == (child.pid, "d1", "bob", False)
    finally:
        kill(child)
    assert lock.status().stale
    with pytest.raises(ConsoleError, match="lock held by bob"):
        lock.update(deploy_id="other", pid=os.getpid())
    lock.release("bob", force=True)
    with pytest.raises(ConsoleError, match="not locked"):
        lock.update(deploy_id="d1", pid=os.getpid())
    lock.acquire("carol", "on purpose")
    with pytest.raises(ConsoleError, match="locked by carol"):
        lock.update(deploy_id="d1", pid=os.getpid())


def test_the_child_takes_over_even_after_its_starter_was_sigkilled(tmp_path: Path) -> None:
    starter = hold(tmp_path, "acquire")
    kill(starter)
    lock = Lock(tmp_path, "lab")
    assert lock.status().stale
    child = hold(tmp_path, "update")
    try:
        info = lock.status()
        assert (info.pid, info.stale, info.deploy_id) == (child.pid, False, "d1")
    finally:
        kill(child)


RACER = """
import sys, time
from console.state.lock import Lock
from console.core.errors import ConsoleError
lock = Lock(sys.argv[1], "lab")
while time.time() < float(sys.argv[2]):
    pass
try:
    lock.acquire(f"racer{sys.argv[3]}", "race", pid=None)
    print("won")
except ConsoleError as exc:
    print("lost", exc)
"""


def test_racing_processes_exactly_one_wins(tmp_path: Path) -> None:
    start = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(start), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        outs.append(out)
    assert sum(o.startswith("won") for o in outs) == 1, outs
    assert all(o.startswith(("won", "lost lab: locked by racer")) for o in outs), outs


CHURN = """
import os, sys
from console.state.lock import Lock
lock = Lock(sys.argv[1], "lab")
print("go", flush=True)
while True:
    lock.acquire("churn", "churning", pid=os.getpid())
    lock.update(deploy_id="d", pid=os.getpid())
    lock.release("churn")
"""


def test_sigkill_at_any_instant_leaves_no_lock_or_a_whole_one(tmp_path: Path) -> None:
    rng = random.Random(7)
    lock = Lock(tmp_path, "lab")
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHURN, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline() == "go\n", proc.stderr.read()
        time.sleep(rng.uniform(0.05, 0.3))
        kill(proc)
        info = lock.status()
        if info is not None:
            assert info.who == "churn" and info.pid == proc.pid and info.stale
            lock.release("churn")  # own stale lock: no force needed
    lock.acquire("alice", "after the churn", pid=os.getpid())  # the guard flock died with its holder
    assert not list(tmp_path.glob(".lock-*.tmp"))  # leftovers of killed writers are swept


def test_unreadable_lock_file_is_stale_and_can_be_forced(tmp_path: Path) -> None:
    lock = Lock(tmp_path, "lab")
    lock.path.write_text("who|what|when\n")
    info = lock.status()
    assert info.stale and info.who == "unknown"
    with pytest.raises(ConsoleError, match=r"stale lock held by unknown .*the lock file is unreadable"):
        lock.acquire("alice", "deploying", pid=os.getpid())
    lock.release("alice", force=True)
    assert lock.status() is None


def test_a_stopped_process_holding_the_guard_gives_an_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    import console.state.lock

    lock = Lock(tmp_path, "lab")
    lock.acquire("alice", "x", pid=os.getpid())
    fd = os.open(lock._guard, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: flock conflicts even in-process
    monkeypatch.setattr(console.state.lock, "GUARD_WAIT", 0.2)
    try:
        with pytest.raises(ConsoleError, match="another process has been changing the lock"):
            lock.release("alice")
    finally:
        os.close(fd)
    assert lock.release("alice").who == "alice"


def test_the_user_is_the_os_account_and_a_display_name_only_stands_beside_it(monkeypatch) -> None:
    import pwd

    from console.session.hold import current_user

    account = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.delenv("DEPLOY_USER", raising=False)
    assert current_user() == account
    monkeypatch.setenv("DEPLOY_USER", "alice")  # naming someone else never replaces who it is
    assert current_user() == f"{account} (alice)"
    for forged in ("alice\n2026-01-01T00:00:00Z 20261122T101500Z-ab12cd3 bob", "\x1b[8malice", "a" * 65):
        monkeypatch.setenv("DEPLOY_USER", forged)
        with pytest.raises(ConsoleError, match=r"^DEPLOY_USER \(a display name\): expected one line"):
            current_user()


def test_nothing_in_the_lock_or_its_audit_holds_a_line_break(tmp_path: Path) -> None:
    lock = Lock(tmp_path, "prod")
    for who, reason in (("alice\nbob", "x"), ("alice", "hotfix\n2026-01-01 forged"), ("alice", "\x1b]0;t\x07")):
        with pytest.raises(ConsoleError, match="expected one line"):
            lock.acquire(who, reason)
    assert lock.status() is None
    # a lock file edited by hand: its takeover is audited with the text made clean
    lock.path.write_text(json.dumps({"who": "mallory\nforged", "reason": "a\nb\x1b[2J", "since": 1.0}))
    lock.release("alice", force=True)
    (entry,) = History(tmp_path).audit(environment="prod")
    assert "\n" not in entry.who + entry.detail and "\x1b" not in entry.detail
    assert entry.who == "alice" and "mallory\\nforged" in entry.detail
