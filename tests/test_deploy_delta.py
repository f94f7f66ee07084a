"""A deploy's change from the live release, in one command per host (console/pipeline/delta.py,
delivery.py, remote.stage), on a 4-host lab: the release and the new assets end exactly as
rsync leaves them (modes, mtimes, hard links to the live release), any host not at the live
release as built gets rsync, a full disk leaves nothing half-staged, and a host that dies
in the command fails alone."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from console.core.events import HostDone, HostOutput, HostProgress
from support.fleet import DEPLOY_PATH, Fleet, Killer, Recorder, deploy, make_fleet, random_text, staged_by

pytestmark = pytest.mark.lab
HOSTS = 4


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    fleet = make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("deploy-delta"))
    done = deploy(fleet.inventory())  # every host serves the trunk's tip, by rsync
    assert done.result == "ok", done
    return fleet


def listing(fleet: Fleet, host: str, path: str) -> list[str]:
    """`find` of a path on a host: type, mode, size (files), mtime to the ns, link count, name."""
    out = fleet.sh(
        host, f"cd {path} && find . \\( -type d -printf 'd %m %T@ %P\\n' \\) -o -printf '%y %m %s %T@ %n %P\\n'"
    )
    return sorted(out.splitlines())


def linked(fleet: Fleet, host: str, release: str, base: str) -> list[str]:
    """The files of `release` that are the same inode as `base`'s (hard links)."""
    out = fleet.sh(
        host,
        f"cd {DEPLOY_PATH}/releases && find {release} -type f | while read -r f; do"
        f' b={base}/${{f#{release}/}}; [ "$f" -ef "$b" ] && echo "${{f#{release}/}}"; done; true',
    )
    return sorted(out.split())


def build_listing(fleet: Fleet, release: str) -> list[str]:
    """The build's directories' mtimes, as the host's `find` prints them."""
    code = fleet.state_dir / "builds" / release / "code"
    out = subprocess.run(
        ["find", ".", "-type", "d", "-printf", "d %T@ %P\\n"], cwd=code, capture_output=True, text=True, check=True
    ).stdout
    return sorted(out.splitlines())


def test_the_change_goes_in_one_command_and_the_release_ends_as_rsync_leaves_it(fleet):
    one, two, three, four = fleet.hosts
    fleet.change("before-delta", extra={"shop/old/a.txt": "a\n", "shop/old/sub/b.txt": "b\n"})
    assert deploy(fleet.inventory(), override=None).result == "ok"
    base = fleet.current(one)
    fleet.sh(
        one,
        f"mkdir {DEPLOY_PATH}/releases/{base}/shop/__pycache__ && touch {DEPLOY_PATH}/releases/{base}/shop/__pycache__/app.pyc",
    )
    gone = {"shop/old/a.txt": None, "shop/old/sub/b.txt": None}
    sha = fleet.change("delta", extra={"shop/tool.sh": "#!/bin/sh\necho tool\n", **gone})
    rec = Recorder()
    first = deploy(fleet.inventory(), recorder=rec, override=None, hosts=(one, two))
    assert first.result == "ok", first
    assert staged_by(rec) == {one: "delta", two: "delta"}
    # the code's tar is gzipped: mostly headers, one or two for each of the shop's files
    sent = {e.host: e.bytes for e in rec.of(HostDone) if e.phase == "sync-assets"}
    assert 0 < sent[one] < 2048, sent
    messages = {e.host: e.message for e in rec.of(HostDone) if e.phase == "sync-code"}
    assert messages[one].startswith(f"staged {first.deploy_id}: ") and base in messages[one]

    rec = Recorder()
    second = deploy(fleet.inventory(), recorder=rec, override=None, hosts=(three, four), delta=False)
    assert second.result == "ok", second
    assert staged_by(rec) == {three: "rsync", four: "rsync"}

    by_delta, by_rsync = first.deploy_id, second.deploy_id
    for host in fleet.hosts:
        assert fleet.revision(host) == sha
    # file for file, mode for mode, mtime for mtime, and the same files hard-linked to the base
    files = [line for line in listing(fleet, one, f"{DEPLOY_PATH}/releases/{by_delta}") if not line.startswith("d ")]
    assert files == [
        line for line in listing(fleet, three, f"{DEPLOY_PATH}/releases/{by_rsync}") if not line.startswith("d ")
    ]
    assert linked(fleet, one, by_delta, base) == linked(fleet, three, by_rsync, base)
    assert "shop/tool.sh" not in linked(fleet, one, by_delta, base)
    shop = fleet.sh(one, f"ls {DEPLOY_PATH}/releases/{by_delta}/shop").split()
    assert "old" not in shop and "__pycache__" not in shop  # what the host added to the base stays there
    assert len(linked(fleet, one, by_delta, base)) > 5
    # directories: rsync's modes, and each its own build's mtimes
    dirs_delta = [line for line in listing(fleet, one, f"{DEPLOY_PATH}/releases/{by_delta}") if line.startswith("d ")]
    dirs_rsync = [line for line in listing(fleet, three, f"{DEPLOY_PATH}/releases/{by_rsync}") if line.startswith("d ")]
    assert [d.split(" ")[1] for d in dirs_delta] == [d.split(" ")[1] for d in dirs_rsync]
    assert sorted(f"d {d.split(' ', 3)[2]} {d.split(' ', 3)[3]}".rstrip() for d in dirs_delta) == [
        b.rstrip() for b in build_listing(fleet, by_delta)
    ]
    # the base release is untouched: its own REVISION, its own files
    assert fleet.sh(one, f"cat {DEPLOY_PATH}/releases/{base}/REVISION").strip() != sha
    # the new asset: the same file on every host, and no staging directory left behind
    manifest = json.loads(fleet.sh(one, f"cat {DEPLOY_PATH}/releases/{by_delta}/manifest.json"))
    asset = manifest["css/delta.css"].removeprefix("/assets/")
    for host, release in ((one, by_delta), (three, by_rsync)):  # each as its own build has it
        built = fleet.state_dir / "builds" / release / "assets" / asset
        st = built.stat()
        want = f"644 {st.st_size} {st.st_mtime_ns // 10**9}.{st.st_mtime_ns % 10**9:09d}"
        assert fleet.sh(host, f"cd {DEPLOY_PATH}/assets && stat -c '%a %s %.9Y' {asset}").strip() == want, host
    for host in fleet.hosts:
        assert fleet.sh(host, f"cd {DEPLOY_PATH}/assets && find . -name '.incoming-*'") == ""


def test_a_host_not_at_the_live_release_as_built_gets_rsync_after_the_others(fleet):
    one, two, three, four = fleet.hosts
    assert deploy(fleet.inventory(), override=None).result == "ok"  # every host at one release
    live = fleet.current(one)
    fleet.sh(two, f"echo changed by hand >> {DEPLOY_PATH}/releases/{live}/shop/app.py")
    previous = sorted(fleet.releases(three))[-2]
    fleet.sh(three, f"cd {DEPLOY_PATH} && ln -sfn releases/{previous} current")
    sha = fleet.change("fallback")
    rec = Recorder()
    done = deploy(fleet.inventory(chunk_size=2), recorder=rec, override=None)
    assert done.result == "ok", done
    assert staged_by(rec) == {one: "delta", two: "rsync", three: "rsync", four: "delta"}
    # the one command goes to every host at once, chunks or not; the rsyncs after it, a chunk at a time
    order = [
        (type(e).__name__, e.host)
        for e in rec.events
        if isinstance(e, (HostProgress, HostDone)) and e.phase == "sync-assets"
    ]
    assert {host for _, host in order[:4]} == set(fleet.hosts) and {k for k, _ in order[:4]} == {"HostProgress"}
    done_at = {host: i for i, (kind, host) in enumerate(order) if kind == "HostDone"}
    assert max(done_at[one], done_at[four]) < min(done_at[two], done_at[three])
    why = {
        e.host: e.lines[0] for e in rec.of(HostOutput) if e.phase == "sync-assets" and e.lines[0].startswith("fallback")
    }
    assert why == {
        two: f"fallback: files of {live} differ from its build",
        three: f"fallback: current is not {live}",
    }
    for host in fleet.hosts:
        assert fleet.revision(host) == sha
    # rsync sent the build's app.py, not a link to the one changed by hand
    assert "changed by hand" not in fleet.sh(two, f"cat {DEPLOY_PATH}/current/shop/app.py")


def test_a_full_disk_on_the_one_command_leaves_nothing_half_staged(fleet):
    victim = fleet.hosts[3]
    assert deploy(fleet.inventory(), override=None).result == "ok"
    before, current = fleet.revision(victim), fleet.current(victim)
    fleet.lab.fill(victim)
    try:
        fleet.change("full", extra={"shop/data/medium.txt": "x" * (200 * 1024)})
        rec = Recorder()
        done = deploy(fleet.inventory(max_failures=1), recorder=rec, override=None)
        assert done.result == "partial", done
        failed = dict(done.hosts_failed)
        assert list(failed) == [victim]
        assert "No space left" in failed[victim], failed
        assert staged_by(rec)[victim] == "delta"
        assert fleet.revision(victim) == before and fleet.current(victim) == current
        assert rec.release not in fleet.releases(victim)
        assert fleet.sh(victim, f"cd {DEPLOY_PATH}/assets && find . -name '.incoming-*'") == ""
    finally:
        fleet.lab.heal(victim)


def test_a_host_whose_sshd_dies_in_the_one_command_fails_and_the_others_finish(fleet):
    victim = fleet.hosts[1]
    assert deploy(fleet.inventory(), override=None).result == "ok"
    before = fleet.revision(victim)
    fleet.lab.slow(victim, "256kbit")  # the 200 KiB change takes ~6 s to reach it
    killer = Killer(fleet, victim, "sync-assets")
    try:
        sha = fleet.change("killed", extra={"shop/data/medium.txt": random_text(200 * 1024)})
        rec = Recorder()
        t0 = time.monotonic()
        done = deploy(fleet.inventory(max_failures=1), recorder=lambda e: (rec(e), killer(e)), override=None)
        elapsed = time.monotonic() - t0
        assert killer.killed.is_set()
        assert done.result == "partial", done
        failed = dict(done.hosts_failed)
        assert list(failed) == [victim] and failed[victim].startswith("sync-assets: stage: "), failed
        assert staged_by(rec)[victim] == "delta"
        assert elapsed < 30, elapsed
        for host in fleet.hosts:
            if host != victim:
                assert fleet.revision(host) == sha
    finally:
        fleet.lab.heal(victim)
    assert fleet.revision(victim) == before
