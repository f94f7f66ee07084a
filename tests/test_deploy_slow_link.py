"""A slow link is not a dead host: on a shaped fleet, transfers that take many times the
keepalive's limit finish, while a host whose link is cut in the middle of the same
transfer fails within that limit (`timeouts.connect`)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from console.core.events import HostFailed, HostProgress
from support.fleet import Fleet, Recorder, deploy, make_fleet, random_text

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tc shapes the links)"),
]
HOSTS = 5
RATE = "1mbit"  # 128 KiB/s: the 1 MiB file below takes ~8 s per host
LIMIT = 2  # timeouts.connect: the keepalive's limit


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    fleet = make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("slow-link"))
    done = deploy(fleet.inventory())
    assert done.result == "ok", done
    return fleet


def test_slow_transfers_finish_and_a_frozen_host_fails_within_the_limit(fleet):
    victim = fleet.hosts[2]
    try:
        for host in fleet.hosts:
            fleet.lab.slow(host, RATE)
        sha = fleet.change("slow", extra={"shop/data/slow.txt": random_text(1024 * 1024)})
        cut_at: list[float] = []
        failed_at: dict[str, float] = {}

        def watch(event) -> None:
            if isinstance(event, HostProgress) and event.phase == "sync-code" and event.host == victim:

                def cut() -> None:
                    time.sleep(1.5)  # its transfer is under way, as every other host's
                    fleet.lab.cut(victim)
                    cut_at.append(time.monotonic())

                threading.Thread(target=cut, daemon=True).start()
            if isinstance(event, HostFailed):
                failed_at[event.host] = time.monotonic()

        rec = Recorder()
        timeouts = {"connect": LIMIT, "command": 10, "sync": 60, "verify": 10}
        inv = fleet.inventory(chunk_size=HOSTS, max_failures=1, timeouts=timeouts)
        done = deploy(inv, recorder=lambda e: (rec(e), watch(e)), override=None)
    finally:
        fleet.lab.heal()
    assert done.result == "partial", done
    assert [h for h, _ in done.hosts_failed] == [victim]
    failure = rec.failures()[victim]
    assert failure.phase == "sync-code" and f"no answer for {LIMIT} s" in failure.reason, failure.reason
    # the keepalive's verdict within LIMIT, then one connect (LIMIT) to remove the partial staging
    assert failed_at[victim] - cut_at[0] < 2 * LIMIT + 1.5, failed_at[victim] - cut_at[0]
    slow = [e for e in rec.events if getattr(e, "phase", "") == "sync-code" and e.kind == "host-done"]
    assert len(slow) == HOSTS - 1 and min(e.seconds for e in slow) > 3 * LIMIT, [e.seconds for e in slow]
    assert {h: fleet.revision(h) for h in fleet.hosts if h != victim} == {h: sha for h in fleet.hosts if h != victim}
