"""The deploy pipeline: trunk -> build -> assets everywhere -> code -> switch -> restart -> verify.

The order is the point: no host activates code until the assets are on every host
that will get the code, and a host that failed to get the assets gets no code (the
"box 1 / box 451" problem of Etsy's article). Code is staged on every host before any
host switches, so by default the mixed-version window is only the activation itself;
`rolling` activates chunk by chunk with restart and verify (and the metric watch)
between chunks instead.

A `Pipeline` only emits events; it neither prints nor stores. The runner wires it to
the subscribers (event log, history, notifier, CLI output) and holds the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from console.config.inventory import Host, Inventory
from console.core.errors import ConsoleError
from console.core.events import (
    PHASES,
    DeployDone,
    DeployStarted,
    Notice,
    PhaseDone,
    PhaseStarted,
    Subscriber,
)
from console.fleet import remote
from console.fleet.connection import HostError, tail
from console.fleet.fanout import Fanout, Outcome, Step, Stopped, chunked
from console.fleet.transport import HostLink
from console.trunk.build import Build, build_release
from console.trunk.checkout import Checkout
from console.trunk.git import resolve_commit
from console.trunk.queue import Change, included, pending_changes, refusal_message, refusals

RSYNC_MODES = "--chmod=u+rwX,go+rX,go-w"


@dataclass(frozen=True)
class DeployRequest:
    """What a person asked for."""

    user: str
    ref: str | None = None
    override: str | None = None
    hosts: tuple[str, ...] = ()  # only these hosts; empty means the whole fleet
    rolling: bool = False
    #: Off only in the test that proves the assets-first order prevents asset 404s.
    assets_first: bool = True


@dataclass
class Plan:
    """A deploy decided but not started: what --dry-run prints and run() executes."""

    deploy_id: str
    release: str
    revision: str
    previous_revision: str | None
    request: DeployRequest
    hosts: list[Host]
    chunks: list[list[Host]]
    commits: list[Change] = field(default_factory=list)
    refused: str = ""
    allowed_failures: int = 0
    update_seconds: float = 0.0  # the fetch happens while planning, before the deploy starts


class Pipeline:
    """Runs one deploy or switch over the fleet, emitting events as it goes."""

    def __init__(
        self,
        inventory: Inventory,
        emit: Subscriber,
        *,
        stop: threading.Event | None = None,
        live_revision: str | None = None,
        on_activated: Callable[[], None] = lambda: None,
        halt_reason: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.inventory = inventory
        self.emit = emit
        self.stop = stop or threading.Event()
        self.live_revision = live_revision
        self.on_activated = on_activated
        self.halt_reason = halt_reason
        self.checkout = Checkout(inventory)
        self._links: dict[str, HostLink] = {}
        self._failed: dict[str, str] = {}
        self._revisions: dict[str, str] = {}

    # -- planning -------------------------------------------------------------------

    def select_hosts(self, names: Sequence[str]) -> list[Host]:
        if not names:
            return list(self.inventory.hosts)
        return [self.inventory.host(n) for n in dict.fromkeys(names)]

    def plan(self, request: DeployRequest, *, deploy_id: str | None = None) -> Plan:
        """Update the checkout, resolve the ref, find the commits it ships and the refusals.
        Touches nothing on any host."""
        inv = self.inventory
        t0 = time.monotonic()
        self.checkout.update()
        revision = self.checkout.resolve(request.ref)
        fetched = time.monotonic() - t0
        if not inv.build_command and not self.checkout.has_dir(revision, inv.assets):
            # bad input, refused like an unknown ref (a build.command may still make the directory)
            raise ConsoleError(
                f"{revision[:7]} has no assets directory {inv.assets + '/'!r}: "
                f"expected the directory named by the inventory key assets ({inv.path})"
            )
        commits: list[Change] = []
        if revision != self.live_revision:
            try:
                queue = pending_changes(
                    self.checkout.path,
                    self.live_revision,
                    revision,
                    trailer=inv.review_trailer,
                    ddl_paths=inv.ddl_paths,
                )
            except ConsoleError as exc:
                raise ConsoleError(
                    f"cannot list the commits between the live revision and {revision[:7]}: {exc}"
                ) from None
            commits = included(queue, revision) if queue else []
        refused = refusal_message(refusals(commits))
        hosts = self.select_hosts(request.hosts)
        release = remote.release_id(revision)
        return Plan(
            deploy_id=deploy_id or release,
            release=release,
            revision=revision,
            previous_revision=self.live_revision,
            request=request,
            hosts=hosts,
            chunks=chunked(hosts, inv.chunk_size),
            commits=commits,
            refused=refused,
            allowed_failures=inv.allowed_failures(len(hosts)),
            update_seconds=round(fetched, 3),
        )

    def describe(self, plan: Plan) -> str:
        """The plan as --dry-run prints it: phases, chunks, hosts and the exact commands."""
        inv, req = self.inventory, plan.request
        sample = plan.hosts[0]
        d = sample.deploy_path
        lines = [
            f"deploy {plan.revision[:7]} to {inv.environment} as release {plan.release} (dry run: nothing changes)",
            f"  from {(plan.previous_revision or 'nothing live')[:12]}: {len(plan.commits)} commit(s)",
            *[
                f"    {c.short} {c.subject} ({c.author}){'' if c.approved else '  NOT REVIEWED'}{'  DDL' if c.ddl else ''}"
                for c in plan.commits
            ],
            f"  strategy {inv.strategy}, chunk size {inv.chunk_size}, {len(plan.chunks)} chunk(s), "
            f"{'rolling activation' if req.rolling else 'activation after every host is staged'}, "
            f"max failures {plan.allowed_failures} of {len(plan.hosts)} hosts",
        ]
        if plan.refused and not req.override:
            lines.append("  WOULD BE REFUSED: " + plan.refused.replace("\n", "\n  "))
        for i, chunk in enumerate(plan.chunks, 1):
            lines.append(f"  chunk {i}: {', '.join(h.name for h in chunk)}")
        ssh = f"ssh {inv.ssh.user}@{{address}} -p {{port}}"
        lines += [
            "  phases:",
            f"    update       git fetch origin in {self.checkout.path}",
            f"    build        export {plan.revision[:7]}, {inv.build_command or 'no build.command'}, hash {inv.assets}/ into versioned names",
            f"    sync-assets  rsync -a --ignore-existing {RSYNC_MODES} <build>/assets/ {{address}}:{d}/assets/   (every host, before any code)",
            f"    sync-code    rsync -a --delete --mkpath --link-dest=../../current/ {RSYNC_MODES} <build>/code/ {{address}}:{d}/releases/{plan.release}/",
            f"    activate     {ssh} {remote.activate(d, plan.release, req.user)}",
            f"    restart      {remote.render(inv.restart, sample) if inv.restart else '(skipped: no restart command in the inventory)'}",
            f"    verify       {self._health_text(sample, plan.revision)}",
            f"    cleanup      keep {inv.keep_releases} releases and their assets (never current or previous)",
        ]
        return "\n".join(lines)

    def _health_text(self, host: Host, revision: str) -> str:
        health = self.inventory.health
        if health is None:
            return "(skipped: no health check in the inventory)"
        if health.url:
            return f"GET {remote.render(health.url, host, quote=False)} must answer {revision[:7]}..."
        return f"{remote.render(health.command or '', host)} must print {revision[:7]}..."

    # -- running --------------------------------------------------------------------

    def run(self, plan: Plan) -> DeployDone:
        """Run a planned deploy. Refuses an unreviewed or DDL range without an override."""
        req, inv = plan.request, self.inventory
        if plan.refused and not req.override:
            raise ConsoleError(plan.refused)
        started = self._start(
            plan, "deploy", PHASES, rolling=req.rolling, commits=len(plan.commits), override=req.override
        )
        if req.override and plan.refused:
            self.emit(Notice(plan.deploy_id, message=f"override by {req.user}: {req.override}", level="warning"))
        fan = Fanout(plan.deploy_id, self.emit, inv.chunk_size, self.stop)
        result, message = "ok", ""
        try:
            self.emit(PhaseStarted(plan.deploy_id, phase="update"))
            self.emit(PhaseDone(plan.deploy_id, phase="update", ok=1, failed=0, seconds=plan.update_seconds))
            build = self._local(plan, "build", lambda: self._build(plan))
            assert isinstance(build, Build)
            self._ship(plan, fan, build)
            self._cleanup(plan, fan)
        except Stopped as stop:
            result, message = "aborted", f"stopped by request during {stop.args[0]}"
        except _Halt as halt:
            result, message = "failed", str(halt)
        except ConsoleError as exc:
            result, message = "failed", str(exc)
        finally:
            fan.close()
        return self._finish(plan, started, result, message, all_or_nothing=True)

    def _start(self, plan: Plan, action: str, phases: tuple[str, ...], **extra: Any) -> float:
        """Emit a run's DeployStarted; returns when it started (monotonic)."""
        self.emit(
            DeployStarted(
                plan.deploy_id,
                environment=self.inventory.environment,
                user=plan.request.user,
                release=plan.release,
                revision=plan.revision,
                previous_revision=plan.previous_revision,
                hosts=tuple(h.name for h in plan.hosts),
                chunks=tuple(tuple(h.name for h in c) for c in plan.chunks),
                phases=phases,
                strategy=self.inventory.strategy,
                action=action,
                pid=os.getpid(),
                **extra,
            )
        )
        return time.monotonic()

    def _finish(
        self, plan: Plan, started: float, result: str, message: str, *, all_or_nothing: bool = False
    ) -> DeployDone:
        """Emit and return a run's DeployDone, its result settled by the failure policy.

        `all_or_nothing`: a deploy's hosts count as ok only when it got to the end (ok or
        partial); a deploy that stopped earlier switched none of them.
        """
        result = self._result(result, plan)
        ok = tuple(h.name for h in plan.hosts if h.name not in self._failed)
        done = DeployDone(
            plan.deploy_id,
            result=result,
            seconds=round(time.monotonic() - started, 3),
            hosts_ok=ok if not all_or_nothing or result in ("ok", "partial") else (),
            hosts_failed=tuple(self._failed.items()),
            message=message,
        )
        self.emit(done)
        return done

    def _local(self, plan: Plan, phase: str, work: Callable[[], object]) -> object:
        self.emit(PhaseStarted(plan.deploy_id, phase=phase))
        t0 = time.monotonic()
        value = work()
        self.emit(PhaseDone(plan.deploy_id, phase=phase, ok=1, failed=0, seconds=round(time.monotonic() - t0, 3)))
        return value

    def _build(self, plan: Plan) -> Build:
        root = self.inventory.state_dir / "builds" / plan.release
        if root.exists():
            shutil.rmtree(root)
        self.checkout.export(plan.revision, root / "code")
        build = build_release(self.inventory, root / "code", root, plan.release, plan.revision)
        (root.parent / "LAST").write_text(plan.release + "\n")
        self._prune_builds()
        return build

    def build_only(self, request: DeployRequest) -> Build:
        """`invoke build`: update and build a release locally, touching no host."""
        return self._build(self.plan(request))

    def last_build(self) -> Build:
        """The newest build (what the single-step tasks ship)."""
        builds = self.inventory.state_dir / "builds"
        try:
            release = (builds / "LAST").read_text().strip()
            root = builds / release
            manifest = json.loads((root / "code" / "manifest.json").read_text())
            revision = (root / "code" / "REVISION").read_text().strip()
        except (OSError, ValueError):
            raise ConsoleError(f"no build in {builds}: run invoke build first") from None
        return Build(release, revision, root, manifest)

    def run_step(self, phase: str, user: str, deploy_id: str) -> DeployDone:
        """One host phase of the newest build over the fleet, as a run of its own."""
        build = self.last_build()
        hosts = list(self.inventory.hosts)
        plan = Plan(
            deploy_id=deploy_id,
            release=build.release,
            revision=build.revision,
            previous_revision=self.live_revision,
            request=DeployRequest(user=user),
            hosts=hosts,
            chunks=chunked(hosts, self.inventory.chunk_size),
            allowed_failures=self.inventory.allowed_failures(len(hosts)),
        )
        t = self.inventory.timeouts
        steps: dict[str, tuple[Step, float, str]] = {
            "sync-assets": (lambda h: self._sync_assets(h, build), t.sync, ""),
            "sync-code": (lambda h: self._sync_code(h, plan), t.sync, ""),
            "activate": (lambda h: self._switch(h, build.release, plan), t.command, ""),
            "restart": (
                self._restart,
                t.command,
                "" if self.inventory.restart else "no restart command in the inventory",
            ),
            "verify": (
                lambda h: self._verify(h, plan),
                t.verify,
                "" if self.inventory.health else "no health check in the inventory",
            ),
            "cleanup": (self._clean_host, t.command, ""),
        }
        step, limit, skipped = steps[phase]
        started = self._start(plan, phase, (phase,))
        fan = Fanout(deploy_id, self.emit, self.inventory.chunk_size, self.stop)
        result, message = "ok", ""
        try:
            self._phase(plan, fan, phase, hosts, step, limit, skipped=skipped)
        except Stopped:
            result, message = "aborted", "stopped by request"
        finally:
            fan.close()
        return self._finish(plan, started, result, message)

    def _prune_builds(self) -> None:
        builds = sorted((self.inventory.state_dir / "builds").iterdir())
        for old in builds[: -max(self.inventory.keep_releases, 2) * 2]:
            shutil.rmtree(old, ignore_errors=True)

    def _ship(self, plan: Plan, fan: Fanout, build: Build) -> None:
        hosts = plan.hosts
        if not plan.request.assets_first:
            self._naive(plan, fan, build)
            return
        hosts = self._phase(
            plan, fan, "sync-assets", hosts, lambda h: self._sync_assets(h, build), self.inventory.timeouts.sync
        )
        self._check_failures(plan, "sync-assets", activated=False)
        hosts = self._phase(
            plan, fan, "sync-code", hosts, lambda h: self._sync_code(h, plan), self.inventory.timeouts.sync
        )
        self._check_failures(plan, "sync-code", activated=False)
        self._activate(plan, fan, hosts, plan.release)

    def _activate(self, plan: Plan, fan: Fanout, hosts: list[Host], release: str) -> None:
        """activate, restart and verify: all at once after staging, or chunk by chunk."""
        t = self.inventory.timeouts
        steps: list[tuple[str, Step, float, str]] = [
            ("activate", lambda h: self._switch(h, release, plan), t.command, ""),
            (
                "restart",
                self._restart,
                t.command,
                "" if self.inventory.restart else "no restart command in the inventory",
            ),
            (
                "verify",
                lambda h: self._verify(h, plan),
                t.verify,
                "" if self.inventory.health else "no health check in the inventory",
            ),
        ]
        if not plan.request.rolling:
            for phase, step, limit, skipped in steps:
                hosts = self._phase(plan, fan, phase, hosts, step, limit, skipped=skipped)
                if phase == "activate":
                    self.on_activated()
            return
        ids = plan.deploy_id
        phase_t0 = {}
        for phase, *_ in steps:
            self.emit(PhaseStarted(ids, phase=phase, hosts=tuple(h.name for h in hosts)))
            phase_t0[phase] = time.monotonic()
        counts = {phase: [0, 0] for phase, *_ in steps}
        for index, chunk in enumerate(chunked(hosts, self.inventory.chunk_size)):
            if index and self.stop.is_set():
                raise Stopped("activate")
            for phase, step, limit, skipped in steps:
                if skipped:
                    continue
                out = Outcome()
                fan.run_chunk(phase, chunk, step, limit, out)
                self._mark(out)
                counts[phase][0] += len(out.ok)
                counts[phase][1] += len(out.failed)
                chunk = out.ok
                if phase == "activate" and index == 0:
                    self.on_activated()
            self._check_failures(plan, "activate", activated=True)
            reason = self.halt_reason()
            if reason:
                raise _Halt(f"rolling activation halted after chunk {index + 1}: {reason}")
        for phase, _, _, skipped in steps:
            ok, failed = counts[phase]
            self.emit(
                PhaseDone(
                    ids,
                    phase=phase,
                    ok=ok,
                    failed=failed,
                    seconds=round(time.monotonic() - phase_t0[phase], 3),
                    skipped=skipped,
                )
            )

    def _naive(self, plan: Plan, fan: Fanout, build: Build) -> None:
        """Every host on its own: assets, code and switch per chunk (the unsafe order)."""
        self.emit(Notice(plan.deploy_id, message="assets-first order is OFF (test switch)", level="warning"))
        hosts = plan.hosts
        for chunk in chunked(hosts, self.inventory.chunk_size):
            part = replace(plan, chunks=[chunk], hosts=chunk)
            staged = self._phase(
                part, fan, "sync-assets", chunk, lambda h: self._sync_assets(h, build), self.inventory.timeouts.sync
            )
            staged = self._phase(
                part, fan, "sync-code", staged, lambda h: self._sync_code(h, plan), self.inventory.timeouts.sync
            )
            self._activate(part, fan, staged, plan.release)

    def _phase(
        self, plan: Plan, fan: Fanout, phase: str, hosts: list[Host], step: Step, limit: float, skipped: str = ""
    ) -> list[Host]:
        """One phase over `hosts`; returns the hosts that succeeded."""
        self.emit(PhaseStarted(plan.deploy_id, phase=phase, hosts=() if skipped else tuple(h.name for h in hosts)))
        t0 = time.monotonic()
        if skipped:
            self.emit(PhaseDone(plan.deploy_id, phase=phase, ok=0, failed=0, seconds=0.0, skipped=skipped))
            return hosts
        out = fan.run(phase, hosts, step, limit)
        self._mark(out)
        self.emit(
            PhaseDone(
                plan.deploy_id,
                phase=phase,
                ok=len(out.ok),
                failed=len(out.failed),
                seconds=round(time.monotonic() - t0, 3),
            )
        )
        return out.ok

    def _result(self, result: str, plan: Plan) -> str:
        """A run that got to the end is ok, partial (failures within max_failures) or failed."""
        if result == "ok" and self._failed:
            return "partial" if len(self._failed) <= plan.allowed_failures else "failed"
        return result

    def _mark(self, out: Outcome) -> None:
        for name, event in out.failed.items():
            self._failed.setdefault(name, f"{event.phase}: {event.reason}")

    def _check_failures(self, plan: Plan, phase: str, *, activated: bool) -> None:
        failed = len(self._failed)
        if failed > plan.allowed_failures:
            where = "stopped before any further activation" if activated else "no host was switched"
            raise _Halt(f"{failed} host(s) failed by {phase}, over max_failures {plan.allowed_failures}: {where}")

    # -- per-host steps ---------------------------------------------------------------

    def link(self, host: Host) -> HostLink:
        if host.name not in self._links:
            self._links[host.name] = HostLink(self.inventory, host)
        return self._links[host.name]

    def _sync_assets(self, host: Host, build: Build) -> tuple[int, str]:
        sent = self.link(host).rsync(
            build.assets, f"{host.deploy_path}/assets", ("--ignore-existing", "--mkpath", RSYNC_MODES)
        )
        return sent, f"{len(build.manifest)} assets"

    def _sync_code(self, host: Host, plan: Plan) -> tuple[int, str]:
        link = self.link(host)
        # --link-dest is relative to the new release dir: unchanged files become hard links
        # to the live release's, so a one-file change sends one file and costs no disk.
        options = ["--delete", "--mkpath", "--link-dest=../../current/", RSYNC_MODES]
        build_code = self.inventory.state_dir / "builds" / plan.release / "code"
        try:
            sent = link.rsync(build_code, f"{host.deploy_path}/releases/{plan.release}", options)
        except HostError as exc:
            try:  # never leave a half-staged release behind (a full disk, a cut link)
                link.run(
                    remote.remove_release(host.deploy_path, plan.release),
                    what="remove partial staging",
                    timeout=min(10.0, self.inventory.timeouts.command),
                )
                exc.reason += "; partial staging removed"
            except HostError:
                exc.reason += "; partial staging could not be removed"
            raise
        return sent, f"staged {plan.release}"

    def _switch(self, host: Host, release: str, plan: Plan) -> tuple[int, str]:
        r = self.link(host).run(remote.activate(host.deploy_path, release, plan.request.user), what="activate")
        self._revisions[host.name] = r.stdout.strip()
        return 0, f"current -> releases/{release}"

    def _restart(self, host: Host) -> tuple[int, str]:
        command = remote.render(self.inventory.restart or "", host)
        out = self.link(host).run(command, what="restart")
        return 0, tail(out.stdout, 1)

    def _verify(self, host: Host, plan: Plan) -> tuple[int, str]:
        health = self.inventory.health
        assert health is not None
        revision = self._revisions.get(host.name, plan.revision)
        limit = self.inventory.timeouts.verify
        deadline = time.monotonic() + limit
        answer = ""
        while True:
            if health.url:
                url = remote.render(health.url, host, quote=False)
                try:
                    with urllib.request.urlopen(url, timeout=min(5.0, limit)) as response:
                        answer = response.read(4096).decode("utf-8", "replace")
                except (urllib.error.URLError, OSError) as exc:
                    answer = f"error: {getattr(exc, 'reason', exc)}"
            else:
                try:
                    answer = (
                        self.link(host)
                        .run(remote.render(health.command or "", host), what="health", timeout=limit)
                        .stdout
                    )
                except HostError as exc:
                    answer = f"error: {exc.reason}"
            if revision in answer:
                return 0, f"serves {revision[:7]}"
            if time.monotonic() > deadline:
                what = (health.url and remote.render(health.url, host, quote=False)) or "health command"
                shown = answer.strip().splitlines()[0][:80] if answer.strip() else "nothing"
                raise HostError(f"{what} answered {shown!r}, not revision {revision[:7]}, within {limit:g} s")
            time.sleep(0.2)

    def _cleanup(self, plan: Plan, fan: Fanout) -> None:
        hosts = [h for h in plan.hosts if h.name not in self._failed]
        self.emit(PhaseStarted(plan.deploy_id, phase="cleanup", hosts=tuple(h.name for h in hosts)))
        t0 = time.monotonic()
        out = fan.run("cleanup", hosts, self._clean_host, self.inventory.timeouts.command)
        # A failed cleanup does not fail the host: the release is live; the leftovers go next time.
        self.emit(
            PhaseDone(
                plan.deploy_id,
                phase="cleanup",
                ok=len(out.ok),
                failed=len(out.failed),
                seconds=round(time.monotonic() - t0, 3),
            )
        )

    def _clean_host(self, host: Host) -> tuple[int, str]:
        """Keep the newest keep_releases releases plus current and the one before it, and
        the assets any kept release's manifest names; remove the rest."""
        keep = self.inventory.keep_releases
        link = self.link(host)
        survey = remote.parse_survey(link.run(remote.survey(host.deploy_path), what="survey").stdout)
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
            link.run(remote.remove(host.deploy_path, doomed), what="cleanup")
        return 0, f"kept {len(kept)} releases, removed {len(doomed)} paths"

    # -- switching back -----------------------------------------------------------------

    def switch(self, release: str, user: str, hosts: Sequence[str] = (), deploy_id: str | None = None) -> DeployDone:
        """Point every host back (or forward) at an existing release: activate, restart, verify."""
        remote.check_release_id(release)
        targets = self.select_hosts(hosts)
        deploy_id = deploy_id or f"{remote.release_id(release.split('-')[1])[:16]}-switch-{release.split('-')[1][:7]}"
        short = release.split("-")[1]
        try:  # the release id names 7 hex digits; history and the queue compare full ids
            revision = resolve_commit(self.checkout.path, short)
        except ConsoleError:
            revision = short
        plan = Plan(
            deploy_id=deploy_id,
            release=release,
            revision=revision,
            previous_revision=self.live_revision,
            request=DeployRequest(user=user),
            hosts=targets,
            chunks=chunked(targets, self.inventory.chunk_size),
            allowed_failures=self.inventory.allowed_failures(len(targets)),
        )
        started = self._start(plan, "switch", ("activate", "restart", "verify"))
        fan = Fanout(deploy_id, self.emit, self.inventory.chunk_size, self.stop)
        result, message = "ok", ""
        try:
            self._activate(plan, fan, targets, release)
        except Stopped:
            result, message = "aborted", "stopped by request"
        except _Halt as halt:
            result, message = "failed", str(halt)
        finally:
            fan.close()
        revisions = sorted(set(self._revisions.values()))
        serving = f"now serving {', '.join(r[:7] for r in revisions)}" if revisions else ""
        return self._finish(plan, started, result, message or serving)


class _Halt(Exception):
    """The failure policy or the metric watch stopped the deploy."""
