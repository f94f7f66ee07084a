"""The tree strategy on a 7-host lab (console/pipeline/distribute.py, fleet/tree.py,
remote.tree_receive): a big change's new assets reach every host from host to host, each
host's files match the build's checksums, a relay killed mid-transfer fails alone (its
children get rsync from the push host), an altered piece from a peer is refused, a
receiver takes nobody's connection but its parent's and no stream without its link's token
(it neither keeps nor relays it), and after a deploy nothing of the tree is left: nothing
listens, no host can reach a peer, no token is on a host, in an event or in the state."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from console.config.inventory import Host
from console.core.events import HostDone, HostOutput, HostProgress, Notice
from console.fleet import remote
from console.fleet.tree import plan_tree
from console.lab import sshd
from console.lab import state as labstate
from console.pipeline import distribute
from support.fleet import DEPLOY_PATH, TIMEOUTS, Fleet, Killer, Recorder, deploy, make_fleet, random_text, staged_by

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


@pytest.fixture
def tokens(monkeypatch) -> list[str]:
    """Every link token the test's deploys draw (console/pipeline/distribute.py, from `secrets`)."""
    drawn: list[str] = []
    draw = secrets.token_hex

    def token_hex(nbytes: int | None = None) -> str:
        drawn.append(draw(nbytes))
        return drawn[-1]

    monkeypatch.setattr(distribute.secrets, "token_hex", token_hex)
    return drawn


def nothing_of_the_tree_is_left(fleet: Fleet, tokens: list[str]) -> None:
    """After a deploy: no host listens on the tree's ports, none can reach a peer's, no
    process of the tree runs, and no file of any host holds a token."""
    nothing_listens(fleet)
    hosts = fleet.inventory().hosts
    for host, peer in zip(hosts, hosts[1:] + hosts[:1], strict=True):
        for port in (PORT, PORT + 1):
            fetch = fleet.lab.exec(host.name, ["socat", "-u", f"TCP:{peer.address}:{port},connect-timeout=2", "-"])
            assert fetch.returncode != 0 and "refused" in fetch.stderr, (host.name, peer.name, fetch)
    st = labstate.require(fleet.lab.name)
    for name in fleet.hosts:
        spec = st.host(name)
        if (pid := sshd.listener_pid(spec)) is not None:
            net = os.readlink(f"/proc/{pid}/ns/net")
            left = [p for p in Path("/proc").glob("[0-9]*") if _in_net(p, net) and _comm(p) in TREE_PROGRAMS]
            assert not left, (name, [_comm(p) for p in left])
        for directory in (spec.www, spec.home):
            for path in Path(directory).rglob("*"):
                if path.is_file() and not path.is_symlink():
                    data = path.read_bytes()
                    assert not any(t.encode() in data for t in tokens), f"{name}: {path} holds a token"


TREE_PROGRAMS = {"mbuffer", "tee", "cat", "dd", "sha256sum", "tar"}


def _in_net(proc: Path, net: str) -> bool:
    try:
        return os.readlink(proc / "ns/net") == net
    except OSError:
        return False


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def no_token_recorded(fleet: Fleet, rec: Recorder, tokens: list[str]) -> None:
    """No token in any event, nor in any file of the state directory: the event log (what
    the live log and `invoke status` read), the history, the builds."""
    assert tokens
    assert not [e for e in rec.events if any(t in repr(e) for t in tokens)]
    for path in fleet.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(t.encode() in data for t in tokens), f"{path} holds a token"


def said_by(rec: Recorder, hosts: list[str]) -> str:
    """What the staging's live log says of `hosts`: why a host went by rsync, when one did."""
    return "\n".join(
        f"{e.host} {e.phase}: {line}"
        for e in rec.of(HostOutput)
        if e.host in hosts and e.phase.startswith("sync-")
        for line in e.lines
    )


def test_a_big_change_goes_through_the_fleet_and_every_host_matches_the_build(fleet, tokens):
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
    # the new assets in place, each host got the code in one command, as for a small change
    how = staged_by(rec)
    assert how == dict.fromkeys(fleet.hosts, "delta"), said_by(rec, [h for h, way in how.items() if way != "delta"])
    assert all(sent < 100_000 for sent in sent_by_rsync(rec).values()), sent_by_rsync(rec)
    assert all(fleet.sh(h, f"ls -A {DEPLOY_PATH}").split().count(".incoming") == 0 for h in fleet.hosts)
    assert len(tokens) == 2 * (HOSTS - 1)  # one per link: each stripe's tree has a link into every host but its root
    nothing_of_the_tree_is_left(fleet, tokens)
    no_token_recorded(fleet, rec, tokens)


def test_an_impostor_at_the_parents_address_is_refused_and_its_host_staged_by_rsync(fleet, tokens):
    hosts = fleet.inventory().hosts
    victim = next(h for h in hosts if plan_tree(hosts).feeds(h)[0].parent is not None)
    parent = plan_tree(hosts).feeds(victim)[0].parent
    assert parent is not None
    big_change(fleet, "tree-impostor")
    rec = Recorder()
    impostor: list[threading.Thread] = []

    def watch(event):  # once the victim listens, its parent's host sends first, without the token
        rec(event)
        if isinstance(event, HostOutput) and event.host == victim.name and "listening" in event.lines and not impostor:
            junk = f"head -c 300000 /dev/urandom | mbuffer -q -O {victim.address}:{PORT}"
            impostor.append(threading.Thread(target=fleet.lab.exec, args=(parent.name, ["sh", "-c", junk])))
            impostor[0].start()

    done = deploy(fleet.inventory(strategy="tree"), recorder=watch, override=None)
    impostor[0].join()
    assert done.result == "ok", done
    said = [e.message for e in rec.of(HostProgress) if e.host == victim.name and "refused" in e.message]
    assert said and f"stripe 1: refused what {parent.address} sent" in said[0], said
    notes = [e.message for e in rec.of(Notice) if e.message.startswith("tree:")]
    assert "1 refused a stream without its link's token" in notes[0], notes
    sent = sent_by_rsync(rec)
    assert sent[victim.name] > 100_000  # its stripe came from the push host
    how = staged_by(rec)  # it and the hosts it feeds by rsync; the others in one command
    assert {h for h, by in how.items() if by == "rsync"} == {h for h, n in sent.items() if n > 100_000}, (how, sent)
    assert "delta" in how.values(), how
    assert assets_sums(fleet, victim.name, rec.release) == build_sums(fleet, rec.release)
    nothing_of_the_tree_is_left(fleet, tokens)


def test_a_small_change_goes_by_rsync_alone(fleet):
    fleet.change("tree-small")
    rec = Recorder()
    done = deploy(fleet.inventory(strategy="tree"), recorder=rec, override=None)
    assert done.result == "ok", done
    assert not [e for e in rec.of(Notice) if e.message.startswith("tree:")]


def test_a_relay_killed_mid_transfer_fails_alone_and_its_children_are_staged_by_rsync(fleet, tokens):
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
    how = staged_by(rec)  # the hosts that lacked a new asset by rsync, any other in one command
    assert {h for h, by in how.items() if by == "rsync"} == {h for h, n in sent.items() if n > 100_000}, (how, sent)
    nothing_of_the_tree_is_left(fleet, tokens)  # the killed host's too (healed: it runs again)
    no_token_recorded(fleet, rec, tokens)


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


def _receive(fleet: Fleet, host: str, script: str, stdin: bytes, send) -> str:
    """Run a host's part (its script, as the deploy's stream would) in its namespaces: its
    keys and the sums, then "go" once it listens, while `send()` feeds it from a peer."""
    pid = sshd.listener_pid(labstate.require(fleet.lab.name).host(host))
    proc = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
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


def _sender(fleet: Fleet, host: Host, to: Host, stream: bytes):
    """What sends `stream` from `host` to `to`'s tree port, as a peer's relay would."""
    send = f'printf %s "$0" | base64 -d | mbuffer -q -O {to.address}:{PORT}'
    return lambda: fleet.lab.exec(host.name, ["sh", "-c", send, base64.b64encode(stream).decode()])


GOOD, BAD = b".x { content: 'genuine'; }\n", b".x { content: 'ALTERED'; }\n"
PEER_ASSET = "css/peer-check.0123456789.css"
PEER_SUMS = f"{hashlib.sha256(GOOD).hexdigest()}  assets/{PEER_ASSET}\n".encode()


def _published(fleet: Fleet, host: Host) -> bool:
    """Whether the host's assets hold the genuine peer-check file (and never the smuggled one)."""
    assert fleet.lab.exec(host.name, ["test", "-e", f"{DEPLOY_PATH}/assets/css/smuggled.css"]).returncode != 0
    held = fleet.lab.exec(host.name, ["cat", f"{DEPLOY_PATH}/assets/{PEER_ASSET}"])
    fleet.sh(host.name, f"rm -f {DEPLOY_PATH}/assets/{PEER_ASSET}")
    return held.returncode == 0 and held.stdout.encode() == GOOD


def test_an_altered_piece_is_refused_and_only_the_parent_may_connect(fleet):
    hosts = fleet.inventory().hosts
    parent, child, stranger = hosts[0], hosts[1], hosts[2]
    token = secrets.token_hex(remote.TREE_TOKEN // 2)
    for sender, data, published in ((stranger, GOOD, False), (parent, BAD, False), (parent, GOOD, True)):
        archive = _tar_of(PEER_ASSET, data)
        role = remote.TreeRole(0, len(archive), PORT, parent.address, ())
        script = remote.tree_receive(DEPLOY_PATH, [role], sums=len(PEER_SUMS), stall=2, patience=3)
        keys = remote.tree_keys([role], child.address, {(0, child.address): token})
        out = _receive(
            fleet, child.name, script, keys + PEER_SUMS, _sender(fleet, sender, child, token.encode() + archive)
        )
        assert _published(fleet, child) == published, (sender.name, out)
        if sender is stranger:  # refused: nothing came
            assert "stripe 1: 0 of" in out, out
    nothing_listens(fleet)


class Listener:
    """A host listening on the tree port for `peer`, as a child's receiver does: what came
    is its `token` (the first `remote.TREE_TOKEN` bytes) and `rest` (how many bytes after)."""

    def __init__(self, fleet: Fleet, host: Host, peer: Host) -> None:
        self.fleet, self.host = fleet, host
        self.token, self.rest = "", -1
        script = f"mbuffer -q -W 10 -I {peer.address}:{PORT} -o - | {{ head -c {remote.TREE_TOKEN}; echo; wc -c; }}"
        self.thread = threading.Thread(target=self._listen, args=(script,))
        self.thread.start()
        port = f":{PORT:04X} "
        for _ in range(500):
            if any(
                port in line and line.split()[3] == "0A"
                for line in fleet.sh(host.name, "cat /proc/net/tcp").splitlines()[1:]
            ):
                return
            time.sleep(0.01)
        raise AssertionError(f"{host.name} does not listen")

    def _listen(self, script: str) -> None:
        self.token, rest = self.fleet.sh(self.host.name, script).split("\n")[:2]
        self.rest = int(rest)

    def came(self) -> tuple[str, int]:
        self.thread.join(timeout=20)
        return self.token, self.rest


def test_a_stream_without_its_token_is_refused_neither_kept_nor_relayed(fleet):
    hosts = fleet.inventory().hosts
    parent, relay, child = hosts[0], hosts[1], hosts[2]
    links = {(0, relay.address): secrets.token_hex(32), (0, child.address): secrets.token_hex(32)}
    archive = _tar_of(PEER_ASSET, GOOD)  # the file matches the sums: only the token can refuse it
    other_deploy = secrets.token_hex(32)
    for stream, kept in (
        (archive, False),  # a sender at the parent's address without the token
        (other_deploy.encode() + archive, False),  # another deploy's token
        (links[0, child.address].encode() + archive, False),  # the token of another link
        (links[0, relay.address].encode() + archive, True),
    ):
        role = remote.TreeRole(0, len(archive), PORT, parent.address, (child.address,))
        script = remote.tree_receive(DEPLOY_PATH, [role], sums=len(PEER_SUMS), stall=2, patience=3)
        assert not any(token in script for token in links.values())  # no token on a command line
        keys = remote.tree_keys([role], relay.address, links)
        listener = Listener(fleet, child, relay)
        out = _receive(fleet, relay.name, script, keys + PEER_SUMS, _sender(fleet, parent, relay, stream))
        assert _published(fleet, relay) == kept, out
        assert ("stripe 1: refused what" in out) != kept, out
        assert f"stripe 1: {len(archive) if kept else 0} of {len(archive)} bytes" in out, out
        # the child's stream begins with its own link's token and carries what was kept; of a
        # refused stream, nothing at all is relayed
        assert listener.came() == ((links[0, child.address], len(archive)) if kept else ("", 0)), out
    nothing_listens(fleet)
