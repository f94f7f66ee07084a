"""The tree strategy's pass: a big change's new assets reach every host through the fleet.

A small change goes to a host at the live release in one command (console/pipeline/
delivery.py); a bigger one goes by rsync, and from one push host every byte of it leaves
N times (chunked). With `strategy: tree`, before such a change's staging the new assets
(console/pipeline/payload.py) go out once from the push host and on from host to host,
down the trees of console/fleet/tree.py, each piece passed on as it arrives (mbuffer, from
Debian). Every host takes part at once, each through one command on its open connection
(`Connection.stream`, the script of `remote.tree_receive`), in three steps:

1. every host starts its receivers, each listening for its parent's address only, and says
   "listening"; the push host waits for all of them (or `timeouts.connect` twice over);
2. it says "go" to every host, which starts its relays, and sends each stripe to its root;
3. each host keeps a stream from a peer only if it begins with its link's token, says what
   it received, checks every file against the push host's checksums (sent over its own SSH
   connection) and links into its assets directory only the files that match: a peer
   cannot hand it an altered or an extra file.

The tokens: every link of the trees (a stripe, the host it feeds) gets a fresh random token
per deploy (`secrets`). Over its own SSH connection's stdin, with the checksums, each host
is given the SHA-256 of the token each of its streams must begin with and the tokens of the
streams it sends: nothing else holds them, no command line, file or log line (the run's
output is censored with them all the same). A stream that does not begin with its token
(a sender at the parent's address without it, or another deploy's) is refused before a
byte of it is kept or relayed, and the host is staged by rsync; a token seen on one link
opens no other, and none outlives the pass: they live in the hosts' shells and pipes only.
Nothing can be fetched with one: no host serves anything, and a listener takes one stream,
from its parent's address, into its incoming directory, of which only the files that match
the checksums are used.

Then the staging: the code of such a change is most often small, and once the new assets
are in place a host at the live release gets it in one command, every host at once, as it
gets a small change (console/pipeline/delivery.py, `brought`). A host that lacks one of the
new assets (a relay that died, a cut link, a file that failed its check) or is not at the
live release gets rsync, chunk by chunk, which finds what the tree brought in place
(`--ignore-existing`) and sends the rest from the push host. So a host whose feeder died is
not failed, it is staged by rsync, and so is a slow host whose part ran past
`timeouts.sync` on a live connection; a host whose own connection died is failed, with that
reason; and no host is switched before every host is staged. Nothing listens once a
host's part is over: its receivers end with their stripe, or after a few
`timeouts.connect` without a byte, and none is reachable but from its parent's address.

A change under `TREE_MIN` bytes of new assets goes by rsync alone: the pass would cost
more than it saves.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from console.config.inventory import Host
from console.core.events import HostFailed, HostProgress, Notice
from console.core.text import censor
from console.fleet import remote
from console.fleet.connection import HostError
from console.fleet.tree import STRIPES, Tree, plan_tree
from console.pipeline.payload import Payload, pack
from console.pipeline.steps import Run
from console.trunk.build import Build

#: Below this many bytes of new files, the tree is not worth its setup: rsync alone.
TREE_MIN = 256 << 10
_STRIPE_LINE = re.compile(r"^stripe (\d+): (\d+) of (\d+) bytes$")
_ENDED_LINE = re.compile(r"^stripe \d+: ended$")
_REFUSED_LINE = re.compile(r"^stripe \d+: refused ")


@dataclass(frozen=True)
class TreePass:
    """What `distribute` did: whether the pass ran (the new assets went through the fleet),
    and the hosts it failed (their connections died)."""

    ran: bool
    failed: dict[str, HostFailed]


@dataclass
class Part:
    """What one host got from the tree."""

    host: Host
    listening: bool = False
    received: int = 0  # bytes of the stripes that came whole
    refused: bool = False  # a stream came without its link's token


class Distribution:
    """One run of the pass over `hosts` (see the module docstring)."""

    def __init__(self, run: Run, hosts: list[Host], payload: Payload) -> None:
        self.run = run
        self.hosts = hosts
        self.payload = payload
        self.tree: Tree = plan_tree(hosts)
        self.parts = {h.name: Part(h) for h in hosts}
        #: (stripe, the fed host's address) -> the token its stream begins with
        self.tokens = {
            (feed.stripe, host.address): secrets.token_hex(remote.TREE_TOKEN // 2)
            for host in hosts
            for feed in self.tree.feeds(host)
            if feed.parent is not None
        }
        for host in hosts:  # what a host could print of them is censored from its output
            run.output.hide(host.name, self._known_to(host))
        self.failed: dict[str, HostFailed] = {}
        self._go = threading.Event()
        self._changed = threading.Condition()
        self._ended: set[str] = set()

    # -- the pass -------------------------------------------------------------------------

    def run_pass(self) -> None:
        """Every host's part at once; returns when each has ended (or failed)."""
        threads = [threading.Thread(target=self._host, args=(h,), name="tree", daemon=True) for h in self.hosts]
        for thread in threads:
            thread.start()
        gather = time.monotonic() + 2 * self.run.inventory.timeouts.connect
        with self._changed:
            while not all(p.listening or h in self._ended for h, p in self.parts.items()):
                left = gather - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        self._go.set()
        for thread in threads:
            thread.join()

    def _known_to(self, host: Host) -> list[str]:
        """The tokens of the links into and out of `host`."""
        return [
            self.tokens[feed.stripe, h.address]
            for feed in self.tree.feeds(host)
            for h in ([host] if feed.parent else []) + list(feed.children)
        ]

    def _feed(self, host: Host) -> Iterator[bytes]:
        """The host's stdin: its links' keys and the checksums, then (once every host
        listens) "go", then the stripe it roots, if any."""
        yield remote.tree_keys(self._roles(host), host.address, self.tokens) + self.payload.sums
        self._go.wait()
        yield b"go\n"
        for role in self._roles(host):
            if role.parent is None:
                yield from self.payload.pieces(role.stripe)

    def _roles(self, host: Host) -> list[remote.TreeRole]:
        sizes, port = self.payload.sizes, self.run.inventory.tree_port
        return [
            remote.TreeRole(
                feed.stripe,
                sizes[feed.stripe],
                port + feed.stripe,
                feed.parent.address if feed.parent else None,
                tuple(c.address for c in feed.children),
            )
            for feed in self.tree.feeds(host)
        ]

    def _host(self, host: Host) -> None:
        run, inv, part = self.run, self.run.inventory, self.parts[host.name]
        deploy_id = run.plan.deploy_id
        run.working[host.name] = "sync-assets"
        command = remote.tree_receive(
            host.deploy_path,
            self._roles(host),
            sums=len(self.payload.sums),
            stall=inv.timeouts.connect,
            patience=2 * inv.timeouts.connect,
        )
        run.emit(HostProgress(deploy_id, phase="sync-assets", host=host.name, message=f"tree: {self._plan_of(host)}"))
        t0 = time.monotonic()
        said: list[str] = []

        def on_line(line: str) -> None:
            if line == "listening":
                with self._changed:
                    part.listening = True
                    self._changed.notify_all()
                return
            said.append(line)
            part.refused |= bool(_REFUSED_LINE.match(line))
            match = _STRIPE_LINE.match(line)
            if match and match.group(2) == match.group(3):
                part.received += int(match.group(2))

        try:
            run.connection(host).stream(
                command, timeout=inv.timeouts.sync, what="tree", feed=self._feed(host), on_line=on_line
            )
        except HostError as exc:
            if exc.reached and exc.exit_code in (None, -1) and not exc.timed_out:  # its connection died
                self.failed[host.name] = HostFailed(
                    deploy_id,
                    phase="sync-assets",
                    host=host.name,
                    reason=exc.reason,
                    seconds=round(time.monotonic() - t0, 3),
                    exit_code=exc.exit_code,
                    output=exc.output,
                )
                run.emit(self.failed[host.name])
            else:  # it never got going (not reached, no mbuffer, a port taken), or a slow host ran out of
                # time on a live connection: the staging's rsync has it all to do, within its own limit
                said.append(f"{exc.reason}; rsync sends it all")
        finally:
            with self._changed:
                self._ended.add(host.name)
                self._changed.notify_all()
        if host.name not in self.failed:
            seconds = time.monotonic() - t0
            run.emit(
                HostProgress(
                    deploy_id,
                    phase="sync-assets",
                    host=host.name,
                    message=censor(
                        f"tree: {_size(part.received)} of {_size(self.payload.size)} in {seconds:.1f} s; "
                        + "; ".join(line for line in said if not (_STRIPE_LINE.match(line) or _ENDED_LINE.match(line))),
                        run.output.secrets_of(host.name),
                    ),
                    bytes=part.received,
                )
            )

    def _plan_of(self, host: Host) -> str:
        """Who feeds the host and whom it feeds, in one line."""
        out = []
        for feed in self.tree.feeds(host):
            source = feed.parent.name if feed.parent else "the push host"
            relay = f" → {', '.join(c.name for c in feed.children)}" if feed.children else ""
            out.append(f"stripe {feed.stripe + 1} from {source}{relay}")
        return "; ".join(out)

    def summary(self, seconds: float) -> str:
        whole = sum(1 for p in self.parts.values() if p.received == self.payload.size)
        rest = len(self.hosts) - whole - len(self.failed)
        refused = sum(p.refused for p in self.parts.values())
        return (
            f"tree: {_size(self.payload.size)} of new assets ({self.payload.files} files) to {len(self.hosts)} hosts "
            f"in {seconds:.1f} s, {STRIPES} stripes, {self.tree.depth} levels: {whole} whole"
            + (f", {rest} partly (rsync sends the rest)" if rest else "")
            + (f", {len(self.failed)} failed" if self.failed else "")
            + (f"; {refused} refused a stream without its link's token" if refused else "")
        )


def distribute(run: Run, hosts: list[Host], base: Build | None) -> TreePass:
    """The tree pass over `hosts` (at `base`, the live release's build, if the deploy host
    still has it), when the change is worth it. What it brought, the staging that follows
    finds in place."""
    build = run.shipped()
    if len(hosts) < STRIPES:
        return TreePass(ran=False, failed={})
    if any(":" in h.address for h in hosts):  # mbuffer's HOST:PORT takes no IPv6 address
        run.emit(Notice(run.plan.deploy_id, message="strategy tree: the fleet has IPv6 addresses: each host by rsync"))
        return TreePass(ran=False, failed={})
    payload = pack(build, base, STRIPES)
    deploy_id = run.plan.deploy_id
    if payload.size < TREE_MIN:
        payload.remove()
        run.emit(
            Notice(
                deploy_id,
                message=f"strategy tree: {_size(payload.size)} of new assets, under {_size(TREE_MIN)}: "
                "each host by rsync this time (chunked)",
            )
        )
        return TreePass(ran=False, failed={})
    t0 = time.monotonic()
    distribution = Distribution(run, hosts, payload)
    try:
        distribution.run_pass()
    finally:
        payload.remove()
    run.emit(Notice(deploy_id, message=distribution.summary(time.monotonic() - t0)))
    return TreePass(ran=True, failed=distribution.failed)


def _size(n: int) -> str:
    """Bytes as people read them: 812 B, 3.2 KiB, 4.0 MiB."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
