"""Faults on the real lab, each resolved in seconds by the test time limits: a host whose
sshd dies mid-sync, a cut link, a full disk, catching up failed hosts, too many failures,
a changed or unknown host key."""

from __future__ import annotations

import time

import pytest

from console.lab.keys import known_hosts_entry
from console.state.history import History
from support.fleet import TIMEOUTS, Fleet, Killer, Recorder, deploy, make_fleet, random_text

pytestmark = pytest.mark.lab
HOSTS = 6


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    fleet = make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("deploy-faults"))
    done = deploy(fleet.inventory())  # every host serves the trunk's tip
    assert done.result == "ok", done
    return fleet


@pytest.fixture
def heal(fleet):
    """Hosts to heal after the test, whatever happens."""
    hosts: list[str] = []
    yield hosts
    for host in hosts:
        fleet.lab.heal(host)


def inventory(fleet: Fleet, **keys):
    return fleet.inventory(**{"chunk_size": 3, "max_failures": 2, **keys})


def assert_serving(fleet: Fleet, hosts, revision: str) -> None:
    assert {h: fleet.revision(h) for h in hosts} == {h: revision for h in hosts}


def test_a_host_whose_sshd_dies_mid_sync_is_failed_by_name_and_the_others_finish(fleet, heal):
    victim = fleet.hosts[1]
    heal.append(victim)
    fleet.lab.slow(victim, "256kbit")  # the 512 KiB file below takes ~16 s to reach it
    sha = fleet.change("kill", extra={"shop/data/blob.txt": random_text(512 * 1024)})  # rsync's, not a delta
    killer = Killer(fleet, victim, "sync-code")
    rec = Recorder()
    t0 = time.monotonic()
    done = deploy(inventory(fleet), recorder=lambda e: (rec(e), killer(e)), override=None)
    elapsed = time.monotonic() - t0
    assert killer.killed.is_set()
    assert done.result == "partial", done
    failed = dict(done.hosts_failed)
    assert list(failed) == [victim]
    assert failed[victim].startswith("sync-code: ") and len(failed[victim]) > len("sync-code: ") + 10
    assert rec.failures()[victim].phase == "sync-code"
    others = [h for h in fleet.hosts if h != victim]
    assert sorted(done.hosts_ok) == others
    assert_serving(fleet, others, sha)
    assert elapsed < 30, elapsed


def test_a_cut_link_fails_that_host_within_its_time_limit(fleet, heal):
    victim = fleet.hosts[2]
    heal.append(victim)
    fleet.lab.cut(victim)
    sha = fleet.change("cut")
    rec = Recorder()
    t0 = time.monotonic()
    done = deploy(inventory(fleet), recorder=rec, override=None)
    elapsed = time.monotonic() - t0
    assert done.result == "partial", done
    assert [h for h, _ in done.hosts_failed] == [victim]
    failure = rec.failures()[victim]
    assert failure.phase == "sync-assets"  # no assets, no code
    limit = TIMEOUTS["sync"]
    assert failure.seconds <= limit + 3, failure  # its own limit (plus the fanout's 2 s backstop)
    assert elapsed < limit + 20, elapsed
    assert_serving(fleet, [h for h in fleet.hosts if h != victim], sha)


def test_a_full_disk_fails_that_host_clearly_and_its_previous_release_keeps_serving(fleet, heal):
    victim = fleet.hosts[3]
    before = fleet.revision(victim)
    current = fleet.current(victim)
    heal.append(victim)
    fleet.lab.fill(victim)
    sha = fleet.change("fill", extra={"shop/data/big.txt": random_text(8 * 1024 * 1024)})
    rec = Recorder()
    done = deploy(inventory(fleet), recorder=rec, override=None)
    assert done.result == "partial", done
    failed = dict(done.hosts_failed)
    assert list(failed) == [victim]
    assert "No space left" in failed[victim], failed
    assert "partial staging removed" in failed[victim]
    # still full: the old release serves, the partial staging is gone
    assert fleet.revision(victim) == before and fleet.current(victim) == current
    assert rec.release not in fleet.releases(victim)
    fleet.lab.heal(victim)
    assert fleet.revision(victim) == before
    assert rec.release not in fleet.releases(victim)
    assert_serving(fleet, [h for h in fleet.hosts if h != victim], sha)


def test_only_failed_brings_the_failed_hosts_up_to_date(fleet, heal):
    victim = fleet.hosts[4]
    heal.append(victim)
    fleet.lab.kill(victim)
    sha = fleet.change("only-failed")
    done = deploy(inventory(fleet), override=None)
    assert done.result == "partial", done
    assert [h for h, _ in done.hosts_failed] == [victim]
    failed = History(fleet.state_dir).failed_hosts_of_last()
    assert failed == [victim]

    fleet.lab.heal(victim)
    again = deploy(inventory(fleet), hosts=tuple(failed), override=None)
    assert again.result == "ok", again
    assert again.hosts_ok == (victim,)
    assert_serving(fleet, fleet.hosts, sha)
    assert History(fleet.state_dir).failed_hosts_of_last() == []


def test_too_many_failures_stop_the_deploy_before_any_host_switches(fleet, heal):
    victims = fleet.hosts[:2]
    heal.extend(victims)
    before = {h: fleet.revision(h) for h in fleet.hosts}
    for victim in victims:
        fleet.lab.kill(victim)
    fleet.change("too-many")
    rec = Recorder()
    done = deploy(inventory(fleet, max_failures=1), recorder=rec, override=None)
    assert done.result == "failed", done
    assert sorted(h for h, _ in done.hosts_failed) == victims
    assert "over max_failures 1" in done.message and "no host was switched" in done.message
    assert not [e for e in rec.events if getattr(e, "phase", "") == "activate"]
    for victim in victims:
        fleet.lab.heal(victim)
    assert {h: fleet.revision(h) for h in fleet.hosts} == before  # no host switched
    assert all(rec.release not in fleet.releases(h) for h in victims)  # staged only where the assets went


def test_a_changed_host_key_is_refused_and_that_host_gets_nothing(fleet, heal):
    victim = fleet.hosts[1]
    before = fleet.revision(victim)
    heal.append(victim)
    fleet.lab.rekey(victim)
    sha = fleet.change("rekey")
    rec = Recorder()
    done = deploy(inventory(fleet), recorder=rec, override=None)
    assert done.result == "partial", done
    failure = rec.failures()[victim]
    assert failure.phase == "sync-assets"
    assert failure.reason.endswith("refused (changed host key)"), failure.reason
    assert fleet.revision(victim) == before
    assert_serving(fleet, [h for h in fleet.hosts if h != victim], sha)


def test_a_host_missing_from_known_hosts_is_refused(fleet, tmp_path):
    victim = fleet.hosts[2]
    before = fleet.revision(victim)
    inv = inventory(fleet)
    host = inv.host(victim)
    name = known_hosts_entry(host.address, host.port, "").strip()
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(line for line in inv.ssh.known_hosts.read_text().splitlines(keepends=True) if line.split()[0] != name)
    )
    sha = fleet.change("unknown-host")
    rec = Recorder()
    done = deploy(
        inventory(fleet, ssh={"user": inv.ssh.user, "key": str(inv.ssh.key), "known_hosts": str(known)}),
        recorder=rec,
        override=None,
    )
    assert done.result == "partial", done
    reason = rec.failures()[victim].reason
    assert reason.endswith(f"is not in {known}: refused (unknown host)"), reason
    assert fleet.revision(victim) == before
    assert_serving(fleet, [h for h in fleet.hosts if h != victim], sha)
