"""One deploy per environment: two at once, exactly one runs; a detached deploy survives a
SIGKILL of the process that started it and leaves a complete history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from console.core.errors import ConsoleError
from console.core.events import PhaseStarted
from console.pipeline.plan import DeployRequest
from console.session.runs import run_deploy
from console.state.history import History
from support.fleet import Fleet, deploy, make_fleet

pytestmark = pytest.mark.lab
HOSTS = 3
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    fleet = make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("deploy-lock"))
    done = deploy(fleet.inventory())
    assert done.result == "ok", done
    return fleet


def test_two_concurrent_deploys_exactly_one_runs(fleet):
    inv = fleet.inventory()
    sha = fleet.change("race")
    start = threading.Barrier(2)
    loser_done = threading.Event()
    results: dict[str, object] = {}

    def hold_until_the_other_is_refused(event) -> None:
        # the winner waits here (inside its deploy, holding the lock) until the loser returned
        if isinstance(event, PhaseStarted) and event.phase == "sync-assets":
            loser_done.wait(30)

    def attempt(name: str) -> None:
        start.wait()
        t0 = time.monotonic()
        try:
            results[name] = run_deploy(inv, DeployRequest(user=name, ref=sha), printer=hold_until_the_other_is_refused)
        except ConsoleError as exc:
            results[name] = (exc, time.monotonic() - t0)
            loser_done.set()

    threads = [threading.Thread(target=attempt, args=(name,)) for name in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    loser_done.set()
    errors = {k: v for k, v in results.items() if isinstance(v, tuple)}
    runs = {k: v for k, v in results.items() if not isinstance(v, tuple)}
    assert len(errors) == 1 and len(runs) == 1, results
    ((_loser, (error, seconds)),) = errors.items()
    ((winner, done),) = runs.items()
    assert done.result == "ok", done
    assert f"locked by {winner} since " in str(error) and "\n" not in str(error), error
    assert seconds < 5
    assert [fleet.revision(h) for h in fleet.hosts] == [sha] * HOSTS
    recent = [d for d in History(fleet.state_dir).deploys(10) if d.revision == sha]
    assert [d.user for d in recent] == [winner]


def test_a_second_invoke_deploy_fails_at_once_while_one_runs(fleet):
    inv = fleet.inventory()
    fleet.change("cli-lock")
    proceed = threading.Event()

    def hold(event) -> None:
        if isinstance(event, PhaseStarted) and event.phase == "sync-assets":
            proceed.wait(60)

    result: dict[str, object] = {}
    runner = threading.Thread(
        target=lambda: result.update(done=run_deploy(inv, DeployRequest(user="alice", override="first"), printer=hold))
    )
    runner.start()
    try:
        deadline = time.monotonic() + 30
        lock = inv.state_dir / f"lock-{inv.environment}.json"
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        p = subprocess.run(
            [str(ROOT / ".venv/bin/invoke"), "deploy", "-i", str(inv.path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "DEPLOY_USER": "bob"},
        )
        assert time.monotonic() - t0 < 10
    finally:
        proceed.set()
        runner.join(60)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "locked by alice since " in lines[0], p.stderr
    assert result["done"].result == "ok"


STARTER = """
import sys
from console.pipeline.plan import DeployRequest
from console.config.inventory import load_inventory
from console.session.detach import start_detached
deploy_id = start_detached(load_inventory(sys.argv[1]), DeployRequest(user="carol", ref=sys.argv[2]))
print(deploy_id, flush=True)
import time; time.sleep(60)
"""


def test_sigkill_of_the_starting_process_does_not_stop_a_detached_deploy(fleet):
    inv = fleet.inventory()
    sha = fleet.change("detached")
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(inv.path), sha],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deploy_id = starter.stdout.readline().strip()
    finally:
        os.killpg(starter.pid, signal.SIGKILL)  # the starter and anything in its process group
        starter.wait(10)
    assert starter.returncode == -signal.SIGKILL
    assert deploy_id, "the starter printed no deploy id"

    history = History(fleet.state_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = history.get(deploy_id) if any(d.id == deploy_id for d in history.deploys(5)) else None
        if record and record.result:
            break
        time.sleep(0.2)
    assert record is not None and record.result == "ok", record
    assert (record.user, record.revision, record.action, record.ref) == ("carol", sha, "deploy", sha)
    assert record.ended and record.seconds is not None
    assert sorted(h.host for h in record.hosts) == fleet.hosts
    assert all(h.ok and h.state != "failed" for h in record.hosts), record.hosts
    assert [fleet.revision(h) for h in fleet.hosts] == [sha] * HOSTS
    # and the lock was released by the detached process
    assert not (inv.state_dir / f"lock-{inv.environment}.json").exists()


KILLED_EARLY = """
import os, signal, sys, threading
from console.pipeline.plan import DeployRequest
from console.config.inventory import load_inventory
from console.session.detach import start_detached
threading.Timer(float(sys.argv[3]), lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
start_detached(load_inventory(sys.argv[1]), DeployRequest(user="dave", ref=sys.argv[2]))
print("returned", flush=True)
threading.Event().wait(30)
"""


def test_sigkill_before_start_detached_returns(fleet):
    inv = fleet.inventory()
    sha = fleet.change("detached-early")
    before = {d.id for d in History(fleet.state_dir).deploys(50)}
    # killed 0.1 s after it spawned the deploy process: before that one has even imported the engine
    starter = subprocess.run(
        [sys.executable, "-c", KILLED_EARLY, str(inv.path), sha, "0.1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert starter.returncode == -signal.SIGKILL
    assert "returned" not in starter.stdout
    history = History(fleet.state_dir)
    deadline = time.monotonic() + 60
    record = None
    while time.monotonic() < deadline:
        new = [d for d in history.deploys(50) if d.id not in before]
        if new and new[0].result:
            record = history.get(new[0].id)
            break
        time.sleep(0.2)
    assert record is not None, "the detached deploy never finished"
    assert (record.result, record.user, record.revision) == ("ok", "dave", sha)
    assert sorted(h.host for h in record.hosts) == fleet.hosts
    assert [fleet.revision(h) for h in fleet.hosts] == [sha] * HOSTS


def test_ctrl_c_stops_a_foreground_deploy_at_the_next_safe_point(fleet):
    """A terminal's Ctrl-C reaches the whole foreground process group: the chunk in flight
    still finishes on every host (its ssh is not killed), then the deploy stops."""
    inv = fleet.inventory(chunk_size=1, restart="sleep 1 && test -f {deploy_path}/current/REVISION")
    sha = fleet.change("ctrl-c")
    p = subprocess.Popen(
        [str(ROOT / ".venv/bin/invoke"), "deploy", "-i", str(inv.path), "--override", "ctrl-c test"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if line.strip().startswith("activate "):
                time.sleep(0.5)  # restart's first chunk is in its `sleep 1`
                os.killpg(p.pid, signal.SIGINT)
                break
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    out = "".join(lines) + out
    assert p.returncode == 1, out + err
    assert "stopping at the next safe point" in err
    assert "done: ABORTED" in out and "stopped by request during restart" in out, out
    assert "FAILED" not in out, out  # the restart in flight was not killed half-way
    assert "hosts: 2 switching, 1 restarting" in out, out  # chunk 1 restarted, then the stop
    assert [fleet.revision(h) for h in fleet.hosts] == [sha] * HOSTS  # activation was all at once, before
