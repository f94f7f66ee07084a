"""What each host phase does on one host, declared once.

`STEPS` is the one table: phase -> its step, its time limit (a `timeouts` key) and why it
does nothing for an inventory (no restart command, no health check). The deploy, the
rolling activation, `switch` and the single-step tasks (`invoke restart` ...) all read it.
The two sync steps ask the run's `Delivery` (console/pipeline/delivery.py: rsync, or a
deploy's change from the live release in one command) how the build reaches the host.

A step talks to its host only through the run's `Connection` (console/fleet/connection.py)
and returns (bytes sent, message) or raises `HostError`; the fanout turns either into the
host's event. `Run` is the state one run's steps share: a new one per run, so a `Pipeline`
runs any number of times. Each connection it hands a step reports what it runs and prints
to the run's `OutputLog` (console/pipeline/output.py): the live log's `HostOutput` events.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from console.config.inventory import Host, Inventory, Timeouts
from console.core.events import Event, Subscriber
from console.core.text import censor, counted, short
from console.fleet import remote
from console.fleet.connection import Connect, Connection, HostError, tail
from console.pipeline.delivery import RSYNC, Delivery
from console.pipeline.output import Echo, OutputLog
from console.pipeline.plan import Plan
from console.trunk.build import Build


def _ignore(event: Event) -> None:
    """The subscriber of a run nobody listens to."""


@dataclass
class Run:
    """One deploy, switch or step in progress: what its steps share and what it found.

    `on_activated` is called once the first hosts are switched (the metric watch starts
    then); `halt_reason` is asked after every chunk of a rolling activation, and a reason
    halts the rest."""

    inventory: Inventory
    plan: Plan
    connect: Connect
    build: Build | None = None
    #: the inventory's secrets by name, read when the run was made (their values go on stdin)
    secrets: dict[str, str] = field(default_factory=dict)
    on_activated: Callable[[], None] = lambda: None
    halt_reason: Callable[[], str | None] = lambda: None
    #: where the hosts' output lines go (`HostOutput` events)
    emit: Subscriber = _ignore
    #: host -> "phase: reason" of its first failure; it takes no further part in the run
    failed: dict[str, str] = field(default_factory=dict)
    #: host -> the revision its `current` named when it was switched
    revisions: dict[str, str] = field(default_factory=dict)
    #: host -> the phase its step is in now (a host runs one step at a time)
    working: dict[str, str] = field(default_factory=dict)
    #: how the sync steps get the build to each host (`delivery.choose` picks it for a deploy)
    delivery: Delivery = RSYNC
    #: host -> what its deploy path held once staged, when the staging brought it back (cleanup's survey)
    surveys: dict[str, remote.Survey] = field(default_factory=dict)
    _connections: dict[str, Connection] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.output = OutputLog(
            self.plan.deploy_id, self.emit, secrets=(*self.inventory.webhooks, *self.secrets.values())
        )

    def connection(self, host: Host) -> Connection:
        """The run's one connection to `host` (made on first use), reporting its output."""
        if host.name not in self._connections:
            inner = self.connect(self.inventory, host)
            self._connections[host.name] = Echo(inner, self.output, host.name, lambda: self.working.get(host.name, ""))
        return self._connections[host.name]

    def close(self) -> None:
        """Close every connection the run made."""
        for connection in self._connections.values():
            connection.close()

    def shipped(self) -> Build:
        """The build the sync steps send (a switch has none: it only activates)."""
        if self.build is None:
            raise HostError("no build to send in this run")
        return self.build


# -- the steps -------------------------------------------------------------------------


def sync_assets(run: Run, host: Host) -> tuple[int, str]:
    return run.delivery.assets(run, host)


def sync_code(run: Run, host: Host) -> tuple[int, str]:
    return run.delivery.code(run, host)


def has_release(run: Run, host: Host) -> bool:
    """Whether the host has the run's release staged (a switch asks every host first);
    a host that cannot be asked is a HostError."""
    answer = run.connection(host).run(remote.has_release(host.deploy_path, run.plan.release), what="check release")
    return answer.stdout.strip() == "present"


def activate(run: Run, host: Host) -> tuple[int, str]:
    release = run.plan.release
    r = run.connection(host).run(remote.activate(host.deploy_path, release, run.plan.request.user), what="activate")
    run.revisions[host.name] = r.stdout.strip()
    return 0, f"current -> releases/{release}"


def restart(run: Run, host: Host) -> tuple[int, str]:
    command = remote.command(run.inventory.restart or "", host, run.secrets)
    out = run.connection(host).run(command.text, what="restart", stdin=command.stdin)
    return 0, tail(out.stdout, 1)


def verify(run: Run, host: Host) -> tuple[int, str]:
    """The health check answers the revision the host was switched to, within `timeouts.verify`."""
    health = run.inventory.health
    assert health is not None, "verify is skipped without a health check"
    revision = run.revisions.get(host.name, run.plan.revision)
    limit = run.inventory.timeouts.verify
    deadline = time.monotonic() + limit
    answer = ""
    while True:
        if health.url:
            url = remote.url(health.url, host)
            try:
                with urllib.request.urlopen(url, timeout=min(5.0, limit)) as response:
                    answer = response.read(4096).decode("utf-8", "replace")
            except (urllib.error.URLError, OSError) as exc:
                answer = f"error: {getattr(exc, 'reason', exc)}"
        else:
            try:
                command = remote.command(health.command or "", host, run.secrets)
                answer = (
                    run.connection(host).run(command.text, what="health", timeout=limit, stdin=command.stdin).stdout
                )
            except HostError as exc:
                answer = f"error: {exc.reason}"
        if revision in answer:
            return 0, f"serves {short(revision)}"
        if time.monotonic() > deadline:
            what = (health.url and remote.url(health.url, host)) or "health command"
            shown = answer.strip().splitlines()[0][:80] if answer.strip() else "nothing"
            raise HostError(f"{what} answered {shown!r}, not revision {short(revision)}, within {limit:g} s")
        time.sleep(0.2)


def cleanup(run: Run, host: Host) -> tuple[int, str]:
    """Keep the newest keep_releases releases plus current and the one before it, and
    the assets any kept release's manifest names; remove the rest."""
    keep = run.inventory.keep_releases
    connection = run.connection(host)
    survey = run.surveys.get(host.name)
    if survey is not None and host.name in run.revisions:  # taken when staged; since then activated
        survey = dataclasses.replace(survey, current=run.plan.release)
    else:
        survey = remote.parse_survey(connection.run(remote.survey(host.deploy_path), what="survey").stdout)
    current, manifests = survey.current, survey.manifests
    releases = sorted(r for r in manifests if remote.RELEASE_ID.match(r))
    kept = set(releases[-keep:])
    if current in manifests:
        kept.add(current)
        older = [r for r in releases if r < current]
        if older:
            kept.add(older[-1])
    doomed = [f"releases/{r}" for r in releases if r not in kept]
    referenced: set[str] = set()
    complete = True
    for name in kept:
        try:
            referenced |= {u.removeprefix("/assets/") for u in json.loads(manifests[name] or "").values()}
        except (ValueError, KeyError):
            complete = False  # a release without a readable manifest: keep every asset
    if complete:
        doomed += [f"assets/{p}" for p in survey.assets if p not in referenced]
    if doomed:
        connection.run(remote.remove(host.deploy_path, doomed), what="cleanup")
    return 0, f"kept {counted(len(kept), 'release')}, removed {counted(len(doomed), 'path')}"


# -- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseStep:
    """One host phase: its step, its time limit and when it is skipped."""

    step: Callable[[Run, Host], tuple[int, str]]
    limit: Callable[[Timeouts], float]
    #: the inventory setting the step needs, and the reason shown when it is absent
    needs: Callable[[Inventory], object] = lambda inventory: True
    skip_reason: str = ""
    #: its commands move no bytes: it runs `fanout.WIDE` hosts at a time, not a chunk
    #: (outside a rolling activation). activate is the switch itself, so the fleet flips
    #: together (the shortest mixed-version window); cleanup comes after it, off the users'
    #: path. restart and verify stay in chunks: a restart costs a host its warm caches for
    #: a while, and only a chunk of the fleet pays that at once.
    wide: bool = False

    def skipped(self, inventory: Inventory) -> str:
        """Why the phase does nothing for this inventory; "" when it runs."""
        return "" if self.needs(inventory) else self.skip_reason

    def bind(self, run: Run, phase: str) -> Callable[[Host], tuple[int, str]]:
        """The step of `phase` as the fanout runs it: a function of the host."""

        def on_host(host: Host) -> tuple[int, str]:
            run.working[host.name] = phase
            try:
                sent, message = self.step(run, host)  # a message may quote output: censor it too
                return sent, censor(message, run.output.secrets_of(host.name))
            finally:
                run.output.phase_done(host.name, phase)

        return on_host


STEPS: dict[str, PhaseStep] = {
    "sync-assets": PhaseStep(sync_assets, lambda t: t.sync),
    "sync-code": PhaseStep(sync_code, lambda t: t.sync),
    "activate": PhaseStep(activate, lambda t: t.command, wide=True),
    "restart": PhaseStep(restart, lambda t: t.command, lambda inv: inv.restart, "no restart command in the inventory"),
    "verify": PhaseStep(verify, lambda t: t.verify, lambda inv: inv.health, "no health check in the inventory"),
    "cleanup": PhaseStep(cleanup, lambda t: t.command, wide=True),
}

#: What switches hosts to a release, in order: a deploy's last steps, and all of a switch.
ACTIVATION: tuple[str, ...] = ("activate", "restart", "verify")
