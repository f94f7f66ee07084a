"""A deterministic fake of the console service, for Pilot and snapshot tests.

Everything is fixed: the clock (`NOW`), the queue, the history, the metric samples and
the scripted event stream of a deploy. Every record is the engine's own class, as
`console.service` exports it to the console, so the fake cannot carry a field the real
service lacks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from console.config.inventory import Host
from console.core.errors import ConsoleError
from console.core.events import (
    PHASES,
    DeployDone,
    DeployStarted,
    Event,
    HostDone,
    HostFailed,
    HostOutput,
    HostProgress,
    Notice,
    PhaseDone,
    PhaseStarted,
    WatchVerdict,
)
from console.core.text import short
from console.pipeline.dry_run import tree_lines
from console.service import Change, DdlHit, DeployRecord, KeyMetric, LockInfo, Marker, Preview, Serving

NOW = 1_700_000_000.0
FLEET_PHASES = ("sync-assets", "sync-code", "activate", "restart", "verify", "cleanup")


def _sha(n: int) -> str:
    return f"{n:02x}" + "".join(f"{(n * 7 + i * 13) % 16:x}" for i in range(38))


def _change(
    n: int,
    subject: str,
    author: str,
    age: float,
    *,
    approved: bool = True,
    files: tuple[str, ...] = (),
    reviewers: tuple[str, ...] = (),
    ddl: tuple[DdlHit, ...] = (),
) -> Change:
    """Commit number `n` of the sample queue, authored `age` seconds before NOW."""
    sha = _sha(n)
    email = f"{author.split()[0].lower()}@shop.example"
    return Change(sha, short(sha), author, email, int(NOW - age), subject, files, approved, reviewers, ddl, False)


def sample_queue() -> list[Change]:
    """Five undeployed commits, oldest first: three reviewed, one not, one with DDL."""
    gift_wrap = DdlHit("migrations/0002_add_gift_wrap.sql", 1, "ALTER TABLE orders ADD gift_wrap bool", "statement")
    return [
        _change(
            1,
            "Cache the product grid per category",
            "Ada Lovelace",
            3300,
            files=("shop/catalog.py", "shop/pages.py"),
            reviewers=("grace",),
        ),
        _change(
            2,
            "Checkout: show the delivery estimate",
            "Grace Hopper",
            2400,
            files=("shop/checkout.py", "assets/js/checkout.js", "assets/css/checkout.css"),
            reviewers=("ada",),
        ),
        _change(
            3,
            "Faster sprite sheet for the header",
            "Linus Pauling",
            1500,
            files=("assets/img/sprite.png", "assets/css/header.css"),
            reviewers=("ada", "grace"),
        ),
        _change(4, "Try a bolder buy button", "Ken Thompson", 900, approved=False, files=("assets/css/buttons.css",)),
        _change(
            5,
            "Add gift wrap",
            "Barbara Liskov",
            300,
            files=("migrations/0002_add_gift_wrap.sql", "shop/checkout.py"),
            reviewers=("ken",),
            ddl=(gift_wrap,),
        ),
    ]


def _record(
    deploy_id: str,
    user: str,
    previous: str,
    revision: str,
    age: float,
    took: float,
    result: str,
    message: str,
    commits: int,
    verdict: str | None,
    *,
    action: str = "deploy",
    switched: bool = True,
    phases: dict[str, float] | None = None,
) -> DeployRecord:
    """A finished deploy that started `age` seconds before NOW, with one checkouts verdict
    (none when `verdict` is None); `switched`: its first host was switched 80% of the way."""
    started = NOW - age
    verdicts = (
        []
        if verdict is None
        else [
            WatchVerdict(
                deploy_id,
                metric="checkouts/min",
                verdict=verdict,
                summary=f"checkouts/min {verdict}",
                ts=started + took + 60,
            )
        ]
    )
    return DeployRecord(
        id=deploy_id,
        environment="production",
        action=action,
        user=user,
        started=started,
        release=release_of(revision, started),
        previous_revision=previous,
        revision=revision,
        commits=commits,
        activated=started + took * 0.8 if switched else None,
        ended=started + took,
        seconds=took,
        result=result,
        message=message,
        phases=dict(phases or {}),
        verdicts=verdicts,
    )


def release_of(revision: str, started: float) -> str:
    """The release id a deploy of `revision` at `started` makes, as the engine names it."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started)) + f"-{revision[:7]}"


def script_deploy(
    deploy_id: str,
    hosts: tuple[str, ...],
    revision: str,
    previous: str | None = "0badc0de" * 5,
    failures: dict[str, tuple[str, str]] | None = None,
    chunk_size: int = 10,
    t0: float = NOW,
    user: str = "ada",
    commits: int = 3,
    override: str | None = None,
    action: str = "deploy",
    phases: tuple[str, ...] = PHASES,
    output: bool = False,
) -> list[Event]:
    """The complete, deterministic event stream of a chunked deploy.

    `failures` maps host -> (phase, reason): the host fails that phase and takes no further part.
    `output`: each host's step also logs the command it ran and what it printed (HostOutput).
    """
    failures = failures or {}
    chunks = tuple(hosts[i : i + chunk_size] for i in range(0, len(hosts), chunk_size))
    t = t0
    out: list[Event] = [
        DeployStarted(
            deploy_id,
            environment="production",
            user=user,
            release=release_of(revision, t0),
            revision=revision,
            previous_revision=previous,
            hosts=hosts,
            chunks=chunks,
            phases=phases,
            strategy="chunked",
            commits=commits,
            override=override,
            action=action,
            ts=t,
        )
    ]
    failed: set[str] = set()
    for phase in phases:
        if phase in ("update", "build"):
            out.append(PhaseStarted(deploy_id, phase=phase, ts=t))
            t += 2.0
            out.append(PhaseDone(deploy_id, phase=phase, ok=1, failed=0, seconds=2.0, ts=t))
            continue
        live = tuple(h for h in hosts if h not in failed)
        out.append(PhaseStarted(deploy_id, phase=phase, hosts=live, ts=t))
        start, ok, bad = t, 0, 0
        for chunk in chunks:
            for i, host in enumerate(chunk):
                if host in failed:
                    continue
                nbytes = 48_000 + sum(map(ord, host)) * 7 if phase.startswith("sync") else 0
                out.append(HostProgress(deploy_id, phase=phase, host=host, message=f"{phase} started", ts=t))
                seconds = 0.2 + (i % 5) * 0.05
                if output:
                    out.append(HostOutput(deploy_id, phase=phase, host=host, lines=_output_of(phase, host), ts=t))
                if failures.get(host, ("", ""))[0] == phase:
                    reason = failures[host][1]
                    out.append(
                        HostFailed(
                            deploy_id,
                            phase=phase,
                            host=host,
                            reason=reason,
                            seconds=seconds,
                            exit_code=255,
                            output=f"ssh {host}: connecting\n{reason}",
                            ts=t,
                        )
                    )
                    failed.add(host)
                    bad += 1
                else:
                    out.append(
                        HostDone(
                            deploy_id,
                            phase=phase,
                            host=host,
                            seconds=seconds,
                            bytes=nbytes,
                            message=f"{phase} ok",
                            ts=t,
                        )
                    )
                    ok += 1
            t += 0.5
        out.append(PhaseDone(deploy_id, phase=phase, ok=ok, failed=bad, seconds=round(t - start, 2), ts=t))
        if phase == "sync-assets" and failed:
            out.append(
                Notice(
                    deploy_id, message=f"{len(failed)} host(s) failed; continuing on the rest", level="warning", ts=t
                )
            )
    ok_hosts = tuple(h for h in hosts if h not in failed)
    hosts_failed = tuple((h, failures[h][1]) for h in hosts if h in failed)
    result = "ok" if not failed else "partial"
    out.append(
        DeployDone(
            deploy_id, result=result, seconds=round(t - t0, 2), hosts_ok=ok_hosts, hosts_failed=hosts_failed, ts=t
        )
    )
    out.append(
        WatchVerdict(
            deploy_id,
            metric="checkouts/min",
            verdict="ok",
            summary="checkouts/min 41 → 40, -2%, limit -20%",
            baseline=41.0,
            current=40.0,
            change=-0.02,
            ts=t + 60,
        )
    )
    return out


def _output_of(phase: str, host: str) -> tuple[str, ...]:
    """What a host's step of `phase` ran and printed, as the engine's Echo reports it."""
    if phase.startswith("sync"):
        where = "assets" if phase == "sync-assets" else "releases/20231114-221320"
        return (f"$ rsync --mkpath /srv/builds/20231114-221320/{phase[5:]}/ → /srv/www/{where}", "48213 bytes sent")
    if phase == "restart":
        return ("$ /srv/www/current/bin/ctl graceful", f"{host}: reloaded 4 workers (graceful)")
    if phase == "verify":
        return (f"$ curl -s http://{host}:8080/_health", "ok revision c0ffee0")
    return (f"$ {phase} /srv/www", f"{phase} ok")


def cut_at(events: list[Event], fraction: float) -> list[Event]:
    """The first `fraction` of a stream: a deploy still in progress."""
    return events[: int(len(events) * fraction)]


def grace_running(service: FakeService, fraction: float = 0.4) -> str:
    """A deploy by grace (d-0099), `fraction` through, still running; returns its id."""
    events = script_deploy("d-0099", service.host_names, "feedbeef" * 5, user="grace", t0=NOW - 30)
    service.streams["d-0099"] = cut_at(events, fraction)
    service.live["d-0099"] = True
    service.running = "d-0099"
    return "d-0099"


class FakeService:
    """Deterministic stand-in for `console.service`; every method is blocking like the real one."""

    def __init__(self, hosts: int = 500, *, queue: list[Change] | None = None) -> None:
        self.environment = "production"
        self.host_names = tuple(f"web{i:03d}" for i in range(1, hosts + 1))
        self.key_metrics = (
            KeyMetric("checkouts/min", "shop.checkout.completed", stat="rate", unit="/min", bad="down", limit=0.2),
            KeyMetric("p95 page ms", "shop.page.render", stat="p95", unit="ms", bad="up", limit=0.5),
            KeyMetric("errors", "shop.errors", stat="rate", unit="/min", bad="up", limit=0.5, dry_run=True),
        )
        self.series_start: dict[str, float] = {}  # metric name -> no samples before this time
        self._queue = list(sample_queue() if queue is None else queue)
        self.metrics_baseline = 120.0
        self.revision: str | None = "0badc0de" * 5
        self.lock: LockInfo | None = None
        self.user = "ada"
        self.failures: dict[str, tuple[str, str]] = {}
        self.streams: dict[str, list[Event]] = {}
        self.live: dict[str, bool] = {}  # deploy id -> keep the follow open after the stream (still running)
        self.running: str | None = None
        self.follow_delay = 0.0  # seconds between events in follow()
        self.started: list[tuple[str, str | None]] = []
        self.options: list[dict[str, bool]] = []  # rolling / only_failed of each start_deploy
        self.switched: list[str] = []  # releases start_switch was asked for
        self.aborted: list[str] = []
        self.failed_last: tuple[str, ...] = ()  # hosts that failed last time ("only failed")
        self.strategy = "chunked"
        self.gate: threading.Event | None = None  # when set, preview() and lock_status() wait for it
        self._next = 42
        # with their verdicts, as `History.deploys()` returns them; all four within the metrics
        # window: a good deploy, a partial one, a switch back, a deploy that switched no host
        self.records: list[DeployRecord] = [
            _record(
                "d-0041",
                "grace",
                _sha(40),
                "0badc0de" * 5,
                600,
                88,
                "ok",
                "deployed by grace, took 88 s",
                2,
                "ok",
                phases=dict(zip(PHASES, (2, 3, 28, 20, 10, 15, 6, 4), strict=True)),
            ),
            _record(
                "d-0040",
                "ken",
                _sha(39),
                _sha(40),
                700,
                60,
                "partial",
                "2 hosts failed: web017, web230",
                1,
                "ok",
                phases=dict(zip(PHASES, (2, 2, 18, 14, 8, 10, 4, 2), strict=True)),
            ),
            _record(
                "d-0039", "ada", _sha(38), _sha(39), 800, 10, "ok", "switched back", 0, "degraded", action="switch"
            ),
            _record(
                "d-0038",
                "ken",
                _sha(39),
                _sha(38),
                850,
                25,
                "failed",
                "no host was switched: sync-assets failed on 12 hosts (10 allowed)",
                1,
                None,
                switched=False,
            ),
        ]
        self.streams["d-0041"] = script_deploy(
            "d-0041", self.host_names, "0badc0de" * 5, previous=_sha(40), t0=NOW - 600, user="grace", commits=2
        )
        self.calls: list[str] = []

    # -- state ---------------------------------------------------------------------
    def live_revision(self) -> str | None:
        return self.revision

    def serving(self) -> Serving | None:
        """The live revision as d-0041 (grace's deploy, 10 minutes ago) put it there."""
        if self.revision is None:
            return None
        live = next((r for r in self.records if r.revision == self.revision and r.result in ("ok", "partial")), None)
        if live is None:
            return Serving(self.revision, "", "", "", "deploy", self.user, NOW)
        since = live.activated or live.ended or live.started
        subject = "Show prices with tax in every country" if self.revision == "0badc0de" * 5 else ""
        return Serving(self.revision, subject, "Grace Hopper", live.id, live.action, live.user, since)

    def queue(self) -> list[Change]:
        return list(self._queue)

    def _included(self, sha: str) -> list[Change]:
        shas = [c.sha for c in self._queue]
        if sha not in shas:
            raise ConsoleError(f"{sha[:7]} is not in the queue")
        return self._queue[: shas.index(sha) + 1]

    def _wait(self) -> None:
        if self.gate is not None:
            self.gate.wait(10)

    def preview(self, sha: str) -> Preview:
        self._wait()
        included = self._included(sha)
        refusals = []
        for c in included:
            if not c.approved:
                refusals.append(f"{c.short} {c.subject}: not reviewed (no Reviewed-by trailer)")
            for hit in c.ddl:
                refusals.append(f"{c.short} {c.subject}: DDL {hit.file}:{hit.line} {hit.text}")
        n = len(self.host_names)
        return Preview(
            target=included[-1],
            commits=included,
            refusals=refusals,
            hosts=n,
            chunks=math.ceil(n / 10),
            chunk_size=10,
            strategy=self.strategy,
            rolling=False,
            allowed_failures=max(1, n // 50),
            failed_hosts=self.failed_last,
            tree=self._tree(self.host_names),
            tree_failed=self._tree(self.failed_last),
        )

    def _tree(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """Who feeds whom with strategy tree: the engine's own lines, over these hosts."""
        if self.strategy != "tree":
            return ()
        return tuple(tree_lines([Host(name, f"198.18.0.{i + 2}") for i, name in enumerate(names)], 7470))

    def _check_lock(self) -> None:
        if self.lock is not None and self.lock.who != self.user:
            raise ConsoleError(f"the deploy lock is held by {self.lock.who}: {self.lock.reason}")

    def _hosts(self, only_failed: bool) -> tuple[str, ...]:
        if not only_failed:
            return self.host_names
        if not self.failed_last:
            raise ConsoleError("--only failed: no host failed in the last deploy of production")
        return self.failed_last

    def _new_deploy(self, events: list[Event]) -> str:
        deploy_id = events[0].deploy_id
        self._next += 1
        self.streams[deploy_id] = events
        return deploy_id

    def start_deploy(
        self, sha: str, override: str | None = None, *, rolling: bool = False, only_failed: bool = False
    ) -> str:
        self.calls.append(f"start_deploy {sha[:7]} {override!r}")
        self._check_lock()
        preview = self.preview(sha)
        if preview.refusals and not override:
            raise ConsoleError(f"refused: {preview.refusals[0]}; give an override reason to deploy anyway")
        hosts = self._hosts(only_failed)
        events = script_deploy(
            f"d-{self._next:04d}",
            hosts,
            sha,
            previous=self.revision,
            failures=self.failures,
            commits=len(preview.commits),
            override=override,
            t0=NOW + 10,
        )
        self.started.append((sha, override))
        self.options.append({"rolling": rolling, "only_failed": only_failed})
        return self._new_deploy(events)

    def dry_run(
        self, sha: str, override: str | None = None, *, rolling: bool = False, only_failed: bool = False
    ) -> str:
        preview = self.preview(sha)
        hosts = self._hosts(only_failed)
        return (
            f"dry run: deploy {short(sha)} ({len(preview.commits)} commits) to {len(hosts)} hosts"
            f"{', rolling' if rolling else ''}\n  sync-assets: rsync --ignore-existing --mkpath ... {hosts[0]}"
        )

    def failed_hosts(self) -> list[str]:
        return list(self.failed_last)

    def retry_failed(self) -> str:
        self._check_lock()
        hosts = self._hosts(True)
        revision = self.revision or ""
        self.calls.append(f"retry_failed {' '.join(hosts)}")
        return self._new_deploy(
            script_deploy(f"d-{self._next:04d}", hosts, revision, previous=revision, commits=0, t0=NOW + 10)
        )

    def switch_target(self, release: str | None = None) -> DeployRecord:
        shipped = [r for r in self.records if r.result in ("ok", "partial") and r.release]
        if release is None:
            if len(shipped) < 2:
                raise ConsoleError("no earlier release in the history to switch back to: pass --release ID")
            return shipped[1]
        for record in shipped:
            if record.release == release:
                return record
        raise ConsoleError(f"release {release} never went out to production: nothing to switch to")

    def start_switch(self, release: str) -> str:
        self._check_lock()
        self.switched.append(release)
        revision = self.switch_target(release).revision or ""
        events = script_deploy(
            f"d-{self._next:04d}",
            self.host_names,
            revision,
            previous=self.revision,
            commits=0,
            action="switch",
            phases=("activate", "restart", "verify"),
            t0=NOW + 10,
        )
        return self._new_deploy(events)

    def abort(self, deploy_id: str) -> None:
        if deploy_id not in self.streams or not self.live.get(deploy_id):
            raise ConsoleError(f"{deploy_id} is not running: its process is gone")
        self.aborted.append(deploy_id)
        ts = self.streams[deploy_id][-1].ts
        self.streams[deploy_id] = [
            *self.streams[deploy_id],
            DeployDone(deploy_id, result="aborted", seconds=30.0, message="stopped by request during sync-code", ts=ts),
        ]
        self.live[deploy_id] = False
        self.running = None

    def running_deploy(self) -> str | None:
        return self.running

    def follow(self, deploy_id: str, stop: threading.Event) -> Iterator[Event]:
        """The stream from its start; a live one is then waited on for what is added to it."""
        if deploy_id not in self.streams:
            raise ConsoleError(f"no deploy {deploy_id}")
        sent = 0
        while not stop.is_set():
            stream = self.streams[deploy_id]
            for event in stream[sent:]:
                if stop.is_set():
                    return
                if self.follow_delay:
                    time.sleep(self.follow_delay)
                yield event
            sent = len(stream)
            if not self.live.get(deploy_id):
                return
            stop.wait(0.05)

    def events(self, deploy_id: str) -> list[Event]:
        if deploy_id not in self.streams:
            raise ConsoleError(f"no event log for {deploy_id}")
        return list(self.streams[deploy_id])

    def history(self, limit: int = 50) -> list[DeployRecord]:
        return self.records[:limit]

    def lock_status(self) -> LockInfo | None:
        self._wait()
        return self.lock

    def take_lock(self, reason: str) -> None:
        if self.lock is not None and self.lock.who != self.user:
            raise ConsoleError(f"the deploy lock is held by {self.lock.who}: {self.lock.reason}")
        self.lock = LockInfo(self.user, reason, NOW - 120, pid=4242)

    def release_lock(self) -> None:
        if self.lock is None:
            raise ConsoleError("the deploy lock is not held")
        self.lock = None

    def metric_series(
        self, metric: KeyMetric, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]]:
        out: list[tuple[float, float | None]] = []
        t = start
        while t <= end:
            k = (t - start) / step
            if t < self.series_start.get(metric.name, start):
                value = None
            elif metric.dry_run:
                value = 0.0  # no errors: a flat line at 0
            elif metric.bad == "down":
                value = 40 + 4 * math.sin(k / 6) + (k % 3)
            else:
                value = 180 + 25 * math.cos(k / 9) + (k % 5) * 2
            out.append((t, value if value is None else round(value, 1)))
            t += step
        return out

    def markers(self, since: float) -> list[Marker]:
        marks = [Marker.of(r) for r in self.records]
        return sorted((m for m in marks if m is not None and m.ts >= since), key=lambda m: m.ts)

    def verdicts(self, deploy_id: str) -> list[WatchVerdict]:
        return [e for e in self.streams.get(deploy_id, []) if isinstance(e, WatchVerdict)]


@dataclass
class FixedClock:
    """A clock for the app that never moves unless told."""

    now: float = NOW
    calls: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now


def running_service(hosts: int = 500) -> FakeService:
    """A deploy by grace 60% through, web017 (and web230, in a fleet that has it) failed."""
    service = FakeService(hosts=hosts)
    failures = {
        "web017": ("sync-assets", "ssh: connect to host web017 port 22: Connection refused"),
        "web230": ("sync-code", "rsync: connection reset by peer (host killed)"),
    }
    events = script_deploy("d-0042", service.host_names, "c0ffee00" * 5, failures=failures, user="grace", t0=NOW - 40)
    service.streams["d-0042"] = cut_at(events, 0.6)
    service.live["d-0042"] = True
    service.running = "d-0042"
    return service


def make_app(service: FakeService | None = None, **kw):
    """The console on the fake service with a fixed clock and slow background polls."""
    from console.tui.app import ConsoleApp

    kw.setdefault("poll_interval", 3600)
    kw.setdefault("metrics_interval", 3600)
    return ConsoleApp(service or FakeService(), clock=FixedClock(), **kw)
