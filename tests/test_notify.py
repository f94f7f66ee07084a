"""Webhooks against real local HTTP receivers: a good one, a failing one, a hanging one, a closed port."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from console.core.events import DeployDone, DeployStarted, HostFailed, Notice, WatchVerdict
from console.core.text import safe_url
from console.session.notify import Notifier
from support.servers import Receiver

HOSTS = tuple(f"web{i:03}" for i in range(1, 51))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hanging() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield f"http://127.0.0.1:{s.getsockname()[1]}/hook?token=s3cr3t"
    s.close()


@pytest.fixture
def refused() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/hook"


def started(**kw) -> DeployStarted:
    base = dict(
        environment="lab",
        user="alice",
        release="20261122T101500Z-ef4501a",
        revision="ef4501a" + "1" * 33,
        previous_revision="ab12cd3" + "2" * 33,
        hosts=HOSTS,
        chunks=(HOSTS,),
        phases=("sync-code",),
        strategy="chunked",
        commits=3,
    )
    base.update(kw)
    return DeployStarted("d1", **base)


def verdict(metric: str, value: str, *, final: bool = True, dry_run: bool = False) -> WatchVerdict:
    return WatchVerdict(
        "d1",
        metric=metric,
        verdict=value,
        summary="checkouts/min 41 → 28, -32%, limit -20%",
        final=final,
        dry_run=dry_run,
    )


def test_start_finish_and_verdict_are_posted_with_summaries(receiver: Receiver) -> None:
    n = Notifier([receiver.url], "lab")
    n(started())
    n(verdict("checkouts", "ok", final=False))  # not final: not announced
    n(verdict("checkouts", "ok"))
    n(DeployDone("d1", result="ok", seconds=4.2, hosts_ok=HOSTS))
    n(verdict("errors", "degraded", dry_run=True))
    assert n.close(timeout=5) == []
    assert [b["event"] for b in receiver.bodies] == ["deploy-started", "watch-verdict", "deploy-done", "watch-verdict"]
    assert [b["summary"] for b in receiver.bodies] == [
        "lab: alice is deploying ab12cd3..ef4501a (3 commits) to 50 hosts",
        "lab: checkouts ok after alice's deploy of ef4501a: checkouts/min 41 → 28, -32%, limit -20%",
        "lab: alice deployed ab12cd3..ef4501a (3 commits) to 50 hosts in 4.2 s; checkouts ok",
        "lab: errors degraded (dry run) after alice's deploy of ef4501a: checkouts/min 41 → 28, -32%, limit -20%",
    ]
    done = receiver.bodies[2]
    assert (done["environment"], done["deploy_id"], done["result"], done["seconds"]) == ("lab", "d1", "ok", 4.2)
    assert done["hosts_ok"] == list(HOSTS)
    assert receiver.bodies[0]["revision"].startswith("ef4501a") and receiver.bodies[0]["commits"] == 3
    assert receiver.bodies[1]["event_summary"] == "checkouts/min 41 → 28, -32%, limit -20%"
    assert receiver.bodies[1]["metric"] == "checkouts" and receiver.bodies[1]["final"] is True
    assert n.sent == 4


def test_failure_summaries(receiver: Receiver) -> None:
    n = Notifier([receiver.url], "lab")
    n(started())
    for host, code in (("web007", 1), ("web008", 255), ("web009", None)):
        n(HostFailed("d1", phase="sync-code", host=host, reason=f"exit {code}" if code else "timeout", exit_code=code))
    n(
        DeployDone(
            "d1",
            result="partial",
            seconds=5.0,
            hosts_failed=(
                ("web007", "exit 1: rsync: No space left on device"),
                ("web008", "exit 255"),
                ("web009", "timeout"),
            ),
        )
    )
    n(started(override="hotfix for checkout", commits=1, previous_revision=None))
    n(DeployDone("d1", result="failed", seconds=1.0, message="build failed: npm exited 1"))
    n.close(timeout=5)
    assert [b["summary"] for b in receiver.bodies] == [
        "lab: alice is deploying ab12cd3..ef4501a (3 commits) to 50 hosts",
        "lab: alice's deploy of ef4501a failed on 3 of 50 hosts (web007: exit 1: rsync: No space left on device, +2 more)",
        "lab: alice is deploying ef4501a (1 commit) to 50 hosts (override: hotfix for checkout)",
        "lab: alice's deploy of ef4501a failed: build failed: npm exited 1",
    ]
    assert receiver.bodies[1]["result"] == "partial"
    assert receiver.bodies[1]["hosts_failed"][0] == ["web007", "exit 1: rsync: No space left on device"]


def test_switch_and_abort_summaries(receiver: Receiver) -> None:
    n = Notifier([receiver.url], "lab")
    n(started(action="switch", hosts=HOSTS[:1], chunks=(HOSTS[:1],)))
    n(DeployDone("d1", result="ok", seconds=0.8))
    n(started())
    n(DeployDone("d1", result="aborted", seconds=12.0, message="stopped by Ctrl-C between chunks"))
    n.close(timeout=5)
    assert [b["summary"] for b in receiver.bodies] == [
        "lab: alice is switching 1 host to release 20261122T101500Z-ef4501a (ef4501a)",
        "lab: alice switched 1 host to ef4501a in 0.8 s",
        "lab: alice is deploying ab12cd3..ef4501a (3 commits) to 50 hosts",
        "lab: alice's deploy of ef4501a was aborted after 12.0 s: stopped by Ctrl-C between chunks",
    ]


def test_a_hanging_or_refusing_receiver_never_slows_the_deploy(receiver: Receiver, hanging: str, refused: str) -> None:
    notices: list[Notice] = []
    n = Notifier([hanging, refused, receiver.url], "lab", timeout=0.5, on_notice=notices.append)
    slowest = 0.0
    for event in (started(), DeployDone("d1", result="ok", seconds=4.2), verdict("checkouts", "ok")):
        t = time.perf_counter()
        n(event)
        slowest = max(slowest, time.perf_counter() - t)
    assert slowest < 0.5  # in practice well under 10 ms
    # the good receiver is not held up by the hanging one
    deadline = time.monotonic() + 2
    while len(receiver.bodies) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(receiver.bodies) == 3
    t = time.monotonic()
    result = n.close(timeout=3)
    assert time.monotonic() - t < 3.5
    messages = [x.message for x in result]
    assert all(x.level == "warning" for x in result)
    assert any(
        m.startswith(f"webhook {safe_url(hanging)} failed: ") and "no answer within 0.5 s" in m for m in messages
    ), messages
    assert any(m.startswith(f"webhook {safe_url(refused)} failed: ") and "refused" in m.lower() for m in messages), (
        messages
    )
    assert not any("s3cr3t" in m for m in messages)  # tokens in URLs never reach a notice
    assert notices == [x for x in result if x in notices] and notices


def test_close_gives_up_at_its_deadline(hanging: str) -> None:
    n = Notifier([hanging], "lab", timeout=2.0)
    n(started())
    n(DeployDone("d1", result="ok", seconds=1))
    t = time.monotonic()
    result = n.close(timeout=0.3)
    assert time.monotonic() - t < 1.0
    assert any("gave up waiting after 0.3 s" in x.message and "not sent" in x.message for x in result)


def test_http_errors_are_notices(receiver: Receiver) -> None:
    bad = Receiver(status=500)
    try:
        n = Notifier([bad.url], "lab")
        n(started())
        result = n.close(timeout=5)
        assert [x.message for x in result] == [
            f"webhook http://127.0.0.1:{bad.server.server_address[1]}/… failed: HTTP 500 Internal Server Error"
        ]
        assert len(bad.bodies) == 1
    finally:
        bad.close()


def test_no_urls_and_unannounced_events_cost_nothing() -> None:
    n = Notifier([], "lab")
    n(started())
    n(DeployDone("d1", result="ok", seconds=1))
    assert n.close() == [] and n.sent == 0
