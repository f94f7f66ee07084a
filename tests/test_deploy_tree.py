"""The tree strategy on a 7-host lab (console/pipeline/distribute.py, fleet/tree.py,
remote.tree_receive): a big change's new assets reach every host from host to host, each
host's files match the build's checksums, a relay killed mid-transfer fails alone (its
children get rsync from the push host), an altered piece from a peer is refused, a
receiver takes nobody's connection but its parent's, and nothing listens afterwards."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import tarfile
import threading
import time

import pytest

from console.core.events import HostDone, HostProgress, Notice
from console.fleet import remote
from console.fleet.tree import plan_tree
from console.lab import sshd
from console.lab import state as labstate
from support.fleet import DEPLOY_PATH, TIMEOUTS, Fleet, Killer, Recorder, deploy, make_fleet, random_text

pytestmark = pytest.mark.lab
HOSTS = 7
PORT = 7470


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    fleet = make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("deploy-tree"))
    done = deploy(fleet.inventory())  # every host serves the trunk's tip, by rsync
    assert done.result == "ok", done
    return fleet


def big_change(fleet: Fleet, label: str, files: int = 6, size: int = 400_000) -> dict[str, str]:
    """Commit `files` new assets of `size` bytes each; returns their names in assets/css."""
    extra: dict[str, str | None] = {f"assets/css/{label}-{n}.css": random_text(size) for n in range(files)}
    fleet.change(label, extra=extra)
    return {name.removeprefix("assets/"): text for name, text in extra.items() if text}


def assets_sums(fleet: Fleet, host: str, release: str) -> dict[str, str]:
    """sha256 of every asset the build of `release` has, as the host holds it."""
    build = fleet.state_dir / "builds" / release / "assets"
    names = sorted(p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file())
    out = fleet.sh(host, f"cd {DEPLOY_PATH}/assets && sha256sum -- " + " ".join(names))
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.splitlines()}


def build_sums(fleet: Fleet, release: str) -> dict[str, str]:
    build = fleet.state_dir / "builds" / release / "assets"
    return {
        p.relative_to(build).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in build.rglob("*")
        if p.is_file()
    }


def sent_by_rsync(rec: Recorder, phase: str = "sync-assets") -> dict[str, int]:
    return {e.host: e.bytes for e in rec.of(HostDone) if e.phase == phase}


def nothing_listens(fleet: Fleet) -> None:
    for host in fleet.hosts:
        listening = fleet.sh(host, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == \"0A\" {print $2}'")
        ports = {int(line.rsplit(":", 1)[1], 16) for line in listening.split()}
        assert not ports & {PORT, PORT + 1}, f"{host} still listens: {ports}"


def test_a_big_change_goes_through_the_fleet_and_every_host_matches_the_build(fleet):
    big_change(fleet, "tree-big")
    rec = Recorder()
    done = deploy(fleet.inventory(strategy="tree"), recorder=rec, override=None)
    assert done.result == "ok", done
    release = rec.release
    want = build_sums(fleet, release)
    for host in fleet.hosts:
        assert fleet.current(host) == release
        assert assets_sums(fleet, host, release) == want, host
    notes = [e.message for e in rec.of(Notice) if e.message.startswith("tree:")]
    assert notes and f"{HOSTS} whole" in notes[0], notes
    # rsync found the new assets in place: it sent each host next to nothing of them
    assert all(sent < 100_000 for sent in sent_by_rsync(rec).values()), sent_by_rsync(rec)
    nothing_listens(fleet)
    assert all(fleet.sh(h, f"ls -A {DEPLOY_PATH}").split().count(".incoming") == 0 for h in fleet.hosts)


def test_a_small_change_goes_by_rsync_alone(fleet):
    fleet.change("tree-small")
    rec = Recorder()
    done = deploy(fleet.inventory(strategy="tree"), recorder=rec, override=None)
    assert done.result == "ok", done
    assert not [e for e in rec.of(Notice) if e.message.startswith("tree:")]


def test_a_relay_killed_mid_transfer_fails_alone_and_its_children_are_staged_by_rsync(fleet):
    hosts = fleet.inventory().hosts
    tree = plan_tree(hosts)
    # the root of stripe 1 relays to two hosts, which relay on: kill it while its link is slow
    victim = tree.roots()[0]
    children = tree.feeds(victim)[0].children
    big_change(fleet, "tree-kill", files=4, size=500_000)
    fleet.lab.slow(victim.name, "2mbit")  # its stripe (1 MB) takes 4 s: the kill comes half-way
    try:
        rec = Recorder()
        killer = Killer(fleet, victim.name, "sync-assets", after=1.0)

        def both(event):
            rec(event)
            killer(event)

        done = deploy(fleet.inventory(strategy="tree", max_failures=1), recorder=both, override=None)
    finally:
        fleet.lab.heal(victim.name)
    assert killer.killed.is_set()
    assert done.result == "partial", done
    failures = rec.failures()
    assert set(failures) == {victim.name}, failures
    release = rec.release
    want = build_sums(fleet, release)
    for host in fleet.hosts:
        if host == victim.name:
            continue
        assert fleet.current(host) == release, host
        assert assets_sums(fleet, host, release) == want, host
    sent = sent_by_rsync(rec)
    assert any(sent[c.name] > 100_000 for c in children), sent  # a child got the rest from the push host


def test_a_relay_whose_link_is_cut_fails_within_the_limit_and_its_children_are_staged(fleet):
    hosts = fleet.inventory().hosts
    victim = plan_tree(hosts).roots()[1]
    big_change(fleet, "tree-cut", files=4, size=500_000)
    fleet.lab.slow(victim.name, "2mbit")
    rec = Recorder()
    cut = threading.Timer(1.5, fleet.lab.cut, args=(victim.name,))

    def watch(event):
        rec(event)
        if isinstance(event, HostProgress) and event.host == victim.name and event.message.startswith("tree: stripe"):
            cut.start()

    try:
        t0 = time.monotonic()
        done = deploy(fleet.inventory(strategy="tree", max_failures=1), recorder=watch, override=None)
        seconds = time.monotonic() - t0
    finally:
        cut.join()
        fleet.lab.heal(victim.name)
    assert done.result == "partial", done
    assert set(rec.failures()) == {victim.name}, rec.failures()
    assert seconds < 2 * TIMEOUTS["sync"] + 5, seconds  # the tree's part, then the staging's: each within its limit
    release = rec.release
    want = build_sums(fleet, release)
    for host in fleet.hosts:
        if host != victim.name:
            assert fleet.current(host) == release, host
            assert assets_sums(fleet, host, release) == want, host


def _tar_of(name: str, data: bytes) -> bytes:
    """A stripe's archive holding `name` with `data`, and a file the sums do not name."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member in (f"assets/{name}", "assets/css/smuggled.css"):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _receive(fleet: Fleet, host: str, script: str, sums: bytes, send) -> str:
    """Run a host's part (its script, as the deploy's stream would) in its namespaces: the
    sums, then "go" once it listens, while `send()` feeds it from a peer."""
    pid = sshd.listener_pid(labstate.require(fleet.lab.name).host(host))
    proc = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(sums)
    proc.stdin.flush()
    assert proc.stdout.readline() == b"listening\n"
    sender = threading.Thread(target=send)
    sender.start()
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    out = proc.stdout.read().decode()
    assert proc.wait(timeout=15) == 0, out
    sender.join()
    return out


def test_an_altered_piece_is_refused_and_only_the_parent_may_connect(fleet):
    hosts = fleet.inventory().hosts
    parent, child, stranger = hosts[0], hosts[1], hosts[2]
    good, bad = b".x { content: 'genuine'; }\n", b".x { content: 'ALTERED'; }\n"
    name = "css/peer-check.0123456789.css"
    sums = f"{hashlib.sha256(good).hexdigest()}  assets/{name}\n".encode()
    for sender, data, published in ((stranger, good, False), (parent, bad, False), (parent, good, True)):
        archive = _tar_of(name, data)
        role = remote.TreeRole(0, len(archive), PORT, parent.address, ())
        script = remote.tree_receive(DEPLOY_PATH, [role], sums=len(sums), stall=2, patience=3)
        send = f'printf %s "$0" | base64 -d | mbuffer -q -O {child.address}:{PORT}'
        encoded = base64.b64encode(archive).decode()
        out = _receive(
            fleet,
            child.name,
            script,
            sums,
            lambda s=sender, cmd=send, arg=encoded: fleet.lab.exec(s.name, ["sh", "-c", cmd, arg]),
        )
        held = fleet.lab.exec(child.name, ["cat", f"{DEPLOY_PATH}/assets/{name}"])
        assert (held.returncode == 0 and held.stdout.encode() == good) == published, (sender.name, out)
        assert fleet.lab.exec(child.name, ["test", "-e", f"{DEPLOY_PATH}/assets/css/smuggled.css"]).returncode != 0
        if sender is stranger:  # refused: nothing came
            assert "stripe 1: 0 of" in out, out
    fleet.sh(child.name, f"rm -f {DEPLOY_PATH}/assets/{name}")
    nothing_listens(fleet)
