"""The live log's engine side on a 3-host lab: every command and its output as HostOutput
events, censored and bounded; and `invoke abort` stopping a detached deploy at its next
safe point (issue 13, item 2)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from console.core.events import DeployDone, HostFailed, HostOutput, PhaseStarted
from console.core.text import censor
from console.pipeline.output import LINES_PER_PHASE, OutputLog
from console.pipeline.plan import DeployRequest
from console.session.detach import start_detached
from console.session.hold import Session
from console.state.eventlog import EventLog
from support.fleet import USER, Fleet, Recorder, deploy, make_fleet

pytestmark = pytest.mark.lab
HOSTS = 3
ROOT = Path(__file__).resolve().parents[1]
INVOKE = str(ROOT / ".venv/bin/invoke")


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    fleet = make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("deploy-output"))
    assert deploy(fleet.inventory()).result == "ok"
    return fleet


def test_every_command_and_its_output_is_logged_censored(fleet):
    hook = "https://hooks.example/T0/B1/xoxb-secret"
    restart = "echo restarting {name}; echo password=hunter2 api_key: abc123; test -f {deploy_path}/current/REVISION"
    inv = fleet.inventory(restart=restart, notify={"webhooks": [hook]})
    recorder = Recorder()
    done = deploy(inv, ref=fleet.change("output"), recorder=recorder, delta=False)  # rsync's lines too
    assert done.result == "ok", done
    lines: dict[str, list[str]] = {}
    for e in recorder.of(HostOutput):
        if e.phase == "restart":
            lines.setdefault(e.host, []).extend(e.lines)
    assert set(lines) == set(fleet.hosts)
    first = fleet.hosts[0]
    assert lines[first][0].startswith("$ echo restarting ")
    assert f"restarting {first}" in lines[first]
    assert "password=*** api_key: ***" in lines[first]
    phases = {e.phase for e in recorder.of(HostOutput)}
    assert {"sync-assets", "sync-code", "activate", "restart", "verify", "cleanup"} <= phases
    assert any(line.endswith("bytes sent") for e in recorder.of(HostOutput) for line in e.lines)
    # nothing secret reached the event log that consoles and invoke status read
    log = (inv.state_dir / "deploys" / f"{done.deploy_id}.jsonl").read_text()
    assert "host-output" in log and "hunter2" not in log and "abc123" not in log and "xoxb-secret" not in log


def test_a_failed_commands_output_is_censored_too(fleet):
    inv = fleet.inventory(restart="echo token=s3cr3t-value >&2; exit 3", max_failures=HOSTS)
    recorder = Recorder()
    done = deploy(inv, ref=fleet.change("fails"), recorder=recorder)
    assert done.result == "partial" or done.result == "failed", done
    failed = recorder.of(HostFailed)
    assert failed and all("s3cr3t" not in f.output and "token=***" in f.output for f in failed)
    out = [line for e in recorder.of(HostOutput) for line in e.lines]
    assert any(line.startswith("✘ ") for line in out) and not any("s3cr3t" in line for line in out)


def test_output_is_bounded_per_host_and_phase():
    events = []
    log = OutputLog("d-1", events.append)
    log.write("web001", "restart", [f"line {i}" for i in range(LINES_PER_PHASE + 50)])
    log.write("web001", "restart", ["one more"])
    log.write("web001", "verify", ["\x1b[2Jcleared?"])
    log.phase_done("web001", "restart")
    restart = [line for e in events if e.phase == "restart" for line in e.lines]
    assert len(restart) == LINES_PER_PHASE + 1
    assert restart[-1] == f"… 51 more lines not logged (at most {LINES_PER_PHASE} per host and phase)"
    assert events[1].lines == ("\\x1b[2Jcleared?",)  # printable, never raw


def test_a_hosts_own_secrets_are_censored_from_its_output_only():
    events = []
    log = OutputLog("d-1", events.append, secrets=["run-secret"])
    log.hide("web001", ["f00d" * 16])
    log.write("web001", "sync-assets", [f"got {'f00d' * 16} and run-secret"])
    log.write("web002", "sync-assets", ["run-secret"])
    assert [e.lines for e in events] == [("got *** and ***",), ("***",)]
    assert log.secrets_of("web002") == ("run-secret",)


def test_censor():
    assert censor("PASSWORD=x y") == "PASSWORD=*** y"
    assert censor("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert censor("git clone https://bob:pw@git.example/x") == "git clone https://bob:***@git.example/x"
    assert censor("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----") == (
        "-----*** PRIVATE KEY-----"
    )
    assert censor("post to https://hooks/abc", ["https://hooks/abc"]) == "post to ***"
    assert censor("deployed 4 files, token-bucket ok") == "deployed 4 files, token-bucket ok"


def test_invoke_abort_stops_a_detached_deploy_at_the_next_safe_point(fleet):
    inv = fleet.inventory(chunk_size=1, restart="sleep 1 && test -f {deploy_path}/current/REVISION")
    deploy_id = start_detached(inv, DeployRequest(user=USER, ref=fleet.change("abort")))
    log = EventLog(inv.state_dir)
    deadline = time.monotonic() + 60
    while not any(isinstance(e, PhaseStarted) and e.phase == "restart" for e in log.read(deploy_id)):
        assert time.monotonic() < deadline, "the deploy never reached restart"
        time.sleep(0.1)
    asked = subprocess.run([INVOKE, "abort", "-i", str(inv.path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert asked.returncode == 0, asked.stderr
    assert f"{deploy_id}: asked to stop at the next safe point" in asked.stdout
    done = [e for e in log.follow(deploy_id) if isinstance(e, DeployDone)]
    assert done and done[0].result == "aborted" and "stopped by request during restart" in done[0].message
    audit = Session(inv).history.audit(environment=inv.environment, limit=5)
    assert any(a.action == "abort" and deploy_id in a.detail for a in audit)
    again = subprocess.run([INVOKE, "abort", "-i", str(inv.path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (
        again.returncode == 1 and again.stderr.strip() == f"error: {deploy_id} already ended aborted: nothing to abort"
    )
