"""The deploy pipeline: trunk -> build -> each host's assets, then its code -> switch -> restart -> verify.

The order is the point: no host activates code until the assets are on every host
that will get the code, and a host that failed to get the assets gets no code (the
"box 1 / box 451" problem of Etsy's article). A host's code follows its own assets at
once (staged code is not live code); code is staged on every host before any host
switches, so by default the mixed-version window is only the activation itself;
`rolling` activates chunk by chunk with restart and verify (and the metric watch)
between chunks instead.

The failure policy: a host that fails a phase takes no further part; the others go on
while the failures stay within the plan's `allowed_failures` (`max_failures`); past it,
no further host is switched. A run that got to the end is ok, partial (failures within
the budget) or failed; one that a stop request ended at a safe point is aborted.

A `Pipeline` only emits events; it neither prints nor stores. The session wires it to
the subscribers (event log, history, notifier, CLI output) and holds the lock. Every run
(deploy, switch, one step) goes through one scaffold, `_execute`, with its own `Run`: a
run that fails at any point (a full disk or a read-only state directory on the deploy
host too) ends `failed` in every record, and a partial build is removed. A switch first
checks that every host has the release, and switches none when one lacks it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from console.config.inventory import Host, Inventory
from console.core.errors import ConsoleError
from console.core.events import (
    PHASES,
    DeployDone,
    DeployStarted,
    HostFailed,
    Notice,
    PhaseDone,
    PhaseStarted,
    Subscriber,
)
from console.core.text import short
from console.fleet import remote
from console.fleet.connection import Connect
from console.fleet.fanout import WIDE, Fanout, Outcome, Stopped, chunked
from console.fleet.transport import HostLink
from console.pipeline import dry_run
from console.pipeline.delivery import RSYNC, DeltaDelivery, choose
from console.pipeline.distribute import distribute
from console.pipeline.plan import DeployRequest, Plan, plan_deploy, plan_over
from console.pipeline.steps import ACTIVATION, STEPS, Run, has_release
from console.state.files import private_dir, private_tree, write_private
from console.trunk.build import Build, build_release, stored_build
from console.trunk.checkout import Checkout
from console.trunk.git import resolve_commit

T = TypeVar("T")


class Pipeline:
    """Runs deploys, switches and single steps over the fleet, emitting events as it goes.

    `connect` makes each host's connection (default: Fabric, `transport.HostLink`);
    `live_release` is the base a deploy's change is measured from (console/pipeline/delivery.py)."""

    def __init__(
        self,
        inventory: Inventory,
        emit: Subscriber,
        *,
        stop: threading.Event | None = None,
        live_revision: str | None = None,
        live_release: str | None = None,
        connect: Connect | None = None,
    ) -> None:
        self.inventory = inventory
        self.emit = emit
        self.stop = stop or threading.Event()
        self.live_revision = live_revision
        self.live_release = live_release
        self.connect: Connect = connect or HostLink
        self.checkout = Checkout(inventory)

    # -- planning -------------------------------------------------------------------

    def plan(self, request: DeployRequest, *, deploy_id: str | None = None) -> Plan:
        """The deploy `request` would be (see `plan.plan_deploy`); touches no host."""
        return plan_deploy(self.inventory, self.checkout, self.live_revision, request, deploy_id=deploy_id)

    def describe(self, plan: Plan) -> str:
        """The plan as --dry-run prints it."""
        return dry_run.describe(self.inventory, plan, self.checkout.path, self.live_release)

    # -- builds ---------------------------------------------------------------------

    def build_only(self, request: DeployRequest) -> Build:
        """`invoke build`: update and build a release locally, touching no host."""
        return self._build(self.plan(request))

    def last_build(self) -> Build:
        """The newest build (what the single-step tasks ship)."""
        builds = self.inventory.state_dir / "builds"
        try:
            return stored_build(builds, (builds / "LAST").read_text().strip())
        except (OSError, ConsoleError):
            raise ConsoleError(f"no build in {builds}: run invoke build first") from None

    def _build(self, plan: Plan) -> Build:
        """Build the release into a private `builds/<release>`; a build that fails, a full
        disk included, leaves nothing behind."""
        builds = private_dir(self.inventory.state_dir / "builds")
        root = builds / plan.release
        try:
            if root.exists():
                shutil.rmtree(root)
            private_dir(root)
            self.checkout.export(plan.revision, root / "code")
            build = build_release(self.inventory, root / "code", root, plan.release, plan.revision)
            private_tree(root)
            write_private(builds / "LAST", plan.release + "\n")
        except BaseException as exc:
            shutil.rmtree(root, ignore_errors=True)
            if isinstance(exc, OSError):
                raise ConsoleError(f"build: cannot write {exc.filename or root}: {exc.strerror or exc}") from None
            raise
        self._prune_builds()
        return build

    def _live_build(self) -> Build | None:
        """The live release's build, if the deploy host still has it (None: no base known)."""
        if not self.live_release:
            return None
        try:
            return stored_build(self.inventory.state_dir / "builds", self.live_release)
        except ConsoleError:
            return None

    def _prune_builds(self) -> None:
        builds = sorted((self.inventory.state_dir / "builds").iterdir())
        for old in builds[: -max(self.inventory.keep_releases, 2) * 2]:
            shutil.rmtree(old, ignore_errors=True)

    # -- the three runs -------------------------------------------------------------

    def run(
        self,
        plan: Plan,
        *,
        on_activated: Callable[[], None] = lambda: None,
        halt_reason: Callable[[], str | None] = lambda: None,
    ) -> DeployDone:
        """Run a planned deploy. Refuses an unreviewed or DDL range without an override.

        `on_activated` is called once the first hosts are switched; `halt_reason` is asked
        after every chunk of a rolling activation, and a reason halts the rest."""
        req = plan.request
        if plan.refused and not req.override:
            raise ConsoleError(plan.refused)
        run = Run(
            self.inventory,
            plan,
            self.connect,
            secrets=self.inventory.secret_values(),
            on_activated=on_activated,
            halt_reason=halt_reason,
            emit=self.emit,
        )

        def work(fan: Fanout) -> str:
            if req.override and plan.refused:
                self.emit(Notice(plan.deploy_id, message=f"override by {req.user}: {req.override}", level="warning"))
            self.emit(PhaseStarted(plan.deploy_id, phase="update"))
            self.emit(PhaseDone(plan.deploy_id, phase="update", ok=1, failed=0, seconds=plan.update_seconds))
            run.build = self._local(plan, "build", lambda: self._build(plan))
            run.delivery = choose(run, self.live_release)
            if req.assets_first:
                self._ship(run, fan)
            else:
                self._naive(run, fan)
            # A failed cleanup does not fail the host: the release is live; the leftovers go next time.
            self._phase(run, fan, "cleanup", [h for h in plan.hosts if h.name not in run.failed], counts=False)
            return ""

        extra = {"rolling": req.rolling, "commits": len(plan.commits), "override": req.override}
        return self._execute(run, "deploy", PHASES, work, all_or_nothing=True, **extra)

    def switch(self, release: str, user: str, deploy_id: str) -> DeployDone:
        """Point every host back (or forward) at an existing release: activate, restart, verify."""
        revision = short_id = remote.release_revision(release)
        try:  # the release id names 7 hex digits; history and the queue compare full ids
            revision = resolve_commit(self.checkout.path, short_id)
        except ConsoleError:
            pass
        plan = plan_over(
            self.inventory,
            list(self.inventory.hosts),
            deploy_id=deploy_id,
            release=release,
            revision=revision,
            previous_revision=self.live_revision,
            request=DeployRequest(user=user),
        )
        run = Run(self.inventory, plan, self.connect, secrets=self.inventory.secret_values(), emit=self.emit)

        def work(fan: Fanout) -> str:
            self._activate(run, fan, self._with_release(run, plan.hosts))
            revisions = sorted(set(run.revisions.values()))
            return f"now serving {', '.join(short(r) for r in revisions)}" if revisions else ""

        return self._execute(run, "switch", ACTIVATION, work)

    def run_step(self, phase: str, user: str, deploy_id: str) -> DeployDone:
        """One host phase of the newest build over the fleet, as a run of its own."""
        build = self.last_build()
        plan = plan_over(
            self.inventory,
            list(self.inventory.hosts),
            deploy_id=deploy_id,
            release=build.release,
            revision=build.revision,
            previous_revision=self.live_revision,
            request=DeployRequest(user=user),
        )
        run = Run(
            self.inventory, plan, self.connect, build=build, secrets=self.inventory.secret_values(), emit=self.emit
        )

        def work(fan: Fanout) -> str:
            self._phase(run, fan, phase, plan.hosts)
            return ""

        return self._execute(run, phase, (phase,), work)

    # -- the scaffold every run shares ----------------------------------------------------

    def _execute(
        self,
        run: Run,
        action: str,
        phases: tuple[str, ...],
        work: Callable[[Fanout], str],
        *,
        all_or_nothing: bool = False,
        **started: Any,
    ) -> DeployDone:
        """DeployStarted, `work` over a fanout, DeployDone with the result settled.

        A stop request (at a safe point) aborts the run; the failure policy or the metric
        watch (`_Halt`) and a `ConsoleError` fail it; the fanout and the run's connections
        are closed whatever happens. `work` returns the message of a run that got to the
        end. `all_or_nothing`: the run's hosts count as ok only if it got to the end (ok
        or partial); a deploy that stopped earlier switched none of them.
        """
        plan = run.plan
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
                ref=plan.request.ref,
                **started,
            )
        )
        t0 = time.monotonic()
        fan = Fanout(plan.deploy_id, self.emit, self.inventory.chunk_size, self.stop)
        result, crash = "ok", None
        try:
            message = work(fan)
        except Stopped as stop:
            result, message = "aborted", f"stopped by request during {stop.args[0]}"
        except _Halt as halt:
            result, message = "failed", str(halt)
        except ConsoleError as exc:
            result, message = "failed", str(exc)
        except OSError as exc:  # the deploy host itself: a full disk, a read-only state directory
            result, message = "failed", f"{exc.filename or 'the deploy host'}: {exc.strerror or exc}"
        except BaseException as exc:  # noqa: BLE001 - a second Ctrl-C or a bug: recorded as failed, then re-raised
            result, message, crash = "failed", f"{type(exc).__name__}: {exc}", exc
        finally:
            fan.close()
            run.close()
        if result == "ok" and run.failed:
            result = "partial" if len(run.failed) <= plan.allowed_failures else "failed"
        ok = tuple(h.name for h in plan.hosts if h.name not in run.failed)
        done = DeployDone(
            plan.deploy_id,
            result=result,
            seconds=round(time.monotonic() - t0, 3),
            hosts_ok=ok if not all_or_nothing or result in ("ok", "partial") else (),
            hosts_failed=tuple(run.failed.items()),
            message=message,
        )
        self.emit(done)
        if crash is not None:
            raise crash
        return done

    def _local(self, plan: Plan, phase: str, work: Callable[[], T]) -> T:
        """A phase on the deploy host itself (build)."""
        self.emit(PhaseStarted(plan.deploy_id, phase=phase))
        t0 = time.monotonic()
        value = work()
        self.emit(PhaseDone(plan.deploy_id, phase=phase, ok=1, failed=0, seconds=round(time.monotonic() - t0, 3)))
        return value

    def _phase(self, run: Run, fan: Fanout, phase: str, hosts: list[Host], *, counts: bool = True) -> list[Host]:
        """One phase over `hosts`, chunk by chunk; returns the hosts that succeeded.
        `counts=False`: a host's failure here does not count against the run (cleanup)."""
        deploy_id, spec = run.plan.deploy_id, STEPS[phase]
        skipped = spec.skipped(self.inventory)
        self.emit(PhaseStarted(deploy_id, phase=phase, hosts=() if skipped else tuple(h.name for h in hosts)))
        t0 = time.monotonic()
        if skipped:
            self.emit(PhaseDone(deploy_id, phase=phase, ok=0, failed=0, seconds=0.0, skipped=skipped))
            return hosts
        out = fan.run(
            phase, hosts, spec.bind(run, phase), spec.limit(self.inventory.timeouts), width=WIDE if spec.wide else 0
        )
        if counts:
            _mark(run, out)
        self.emit(
            PhaseDone(
                deploy_id, phase=phase, ok=len(out.ok), failed=len(out.failed), seconds=round(time.monotonic() - t0, 3)
            )
        )
        return out.ok

    # -- the order ------------------------------------------------------------------------

    def _ship(self, run: Run, fan: Fanout) -> None:
        """Stage every host (its assets, then its code), then switch the hosts that staged."""
        self._activate(run, fan, self._stage(run, fan, run.plan.hosts))

    def _stage(self, run: Run, fan: Fanout, hosts: list[Host]) -> list[Host]:
        """sync-assets then sync-code on each host of a chunk, chunk by chunk; returns the
        hosts that have both. A delivery of a few KiB a host (`DeltaDelivery`) stages every
        host at once (`WIDE`): the chunk bounds the bytes in flight, and these are few. The
        hosts it must rsync instead, it puts off to a second pass, a chunk at a time.

        A host's code follows its own assets at once, without waiting for the rest of the
        fleet's: staged code is not live code. What the assets-first order needs is that no
        host switches before every host that will get the code has its assets, and that a
        host that failed its assets gets no code; `_activate` starts only after the last
        chunk. Past the failure budget, staging stops and no host is switched."""
        deploy_id, inv, phases = run.plan.deploy_id, self.inventory, ("sync-assets", "sync-code")
        planned = hosts
        outcomes = {phase: Outcome() for phase in phases}
        steps = [(phase, STEPS[phase].bind(run, phase), STEPS[phase].limit(inv.timeouts)) for phase in phases]
        t0 = time.monotonic()
        for phase in phases:
            self.emit(PhaseStarted(deploy_id, phase=phase, hosts=tuple(h.name for h in hosts)))
        if inv.strategy == "tree" and run.delivery is RSYNC:  # a big change: its new assets through the fleet first
            tree = distribute(run, hosts, self._live_build())
            outcomes["sync-assets"].failed.update(tree.failed)
            _mark(run, outcomes["sync-assets"])
            hosts = [h for h in hosts if h.name not in run.failed]
            if tree.ran:  # the new assets are in place: what is left may be a small change
                run.delivery = choose(run, self.live_release, brought=True)
        # a few KiB a host: every host at once, and the hosts it puts off (rsync) after, a chunk at a time
        width = WIDE if isinstance(run.delivery, DeltaDelivery) else inv.chunk_size
        if len(run.failed) <= run.plan.allowed_failures:  # the tree's failures count too
            for chunk in fan.chunks("sync-assets", hosts, width, outcomes.values()):
                fan.run_steps(chunk, steps, outcomes)
                for outcome in outcomes.values():
                    _mark(run, outcome)
                if len(run.failed) > run.plan.allowed_failures:
                    break
        for phase, outcome in outcomes.items():
            ok, failed = len(outcome.ok), len(outcome.failed)
            self.emit(PhaseDone(deploy_id, phase=phase, ok=ok, failed=failed, seconds=round(time.monotonic() - t0, 3)))
        _check_failures(run, "sync-code" if outcomes["sync-code"].failed else "sync-assets", activated=False)
        staged = {h.name for h in outcomes["sync-code"].ok}
        return [h for h in planned if h.name in staged]

    def _naive(self, run: Run, fan: Fanout) -> None:
        """Every chunk on its own: assets, code and switch per chunk (the unsafe order)."""
        self.emit(Notice(run.plan.deploy_id, message="assets-first order is OFF (test switch)", level="warning"))
        for chunk in chunked(run.plan.hosts, self.inventory.chunk_size):
            staged = self._phase(run, fan, "sync-assets", chunk)
            staged = self._phase(run, fan, "sync-code", staged)
            self._activate(run, fan, staged)

    def _with_release(self, run: Run, hosts: list[Host]) -> list[Host]:
        """Before a switch changes anything: the hosts that have the release. One without
        it refuses the whole switch (switching the others would leave a mixed fleet); one
        that cannot be asked fails, within the failure budget."""
        plan = run.plan
        missing: list[str] = []

        def check(host: Host) -> tuple[int, str]:
            if not has_release(run, host):
                missing.append(host.name)
            return 0, ""

        quiet = Fanout(plan.deploy_id, lambda event: None, self.inventory.chunk_size, self.stop)
        try:
            out = quiet.run("activate", hosts, check, self.inventory.timeouts.command)
        finally:
            quiet.close()
        if missing:
            missing.sort()
            for name in missing:
                reason = f"release {plan.release} is not on this host"
                self.emit(HostFailed(plan.deploy_id, phase="activate", host=name, reason=reason))
                run.failed[name] = f"activate: {reason}"
            shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
            raise _Halt(
                f"release {plan.release} is missing on {len(missing)} of {len(hosts)} hosts ({shown}): no host was switched"
            )
        for event in out.failed.values():
            self.emit(event)
        _mark(run, out)
        _check_failures(run, "activate", activated=False)
        return [h for h in out.ok if h.name not in missing]

    def _activate(self, run: Run, fan: Fanout, hosts: list[Host]) -> None:
        """activate, restart and verify: all at once after staging, or chunk by chunk."""
        if not run.plan.request.rolling:
            for phase in ACTIVATION:
                hosts = self._phase(run, fan, phase, hosts)
                if phase == "activate":
                    run.on_activated()
            return
        inv, deploy_id = self.inventory, run.plan.deploy_id
        skipped = {phase: STEPS[phase].skipped(inv) for phase in ACTIVATION}
        phase_t0 = {}
        for phase in ACTIVATION:
            self.emit(PhaseStarted(deploy_id, phase=phase, hosts=tuple(h.name for h in hosts)))
            phase_t0[phase] = time.monotonic()
        counts = {phase: [0, 0] for phase in ACTIVATION}
        for index, chunk in enumerate(chunked(hosts, inv.chunk_size)):
            if index and self.stop.is_set():
                raise Stopped("activate")
            for phase in ACTIVATION:
                if skipped[phase]:
                    continue
                spec, out = STEPS[phase], Outcome()
                fan.run_chunk(phase, chunk, spec.bind(run, phase), spec.limit(inv.timeouts), out)
                _mark(run, out)
                counts[phase][0] += len(out.ok)
                counts[phase][1] += len(out.failed)
                chunk = out.ok
                if phase == "activate" and index == 0:
                    run.on_activated()
            _check_failures(run, "activate", activated=True)
            reason = run.halt_reason()
            if reason:
                raise _Halt(f"rolling activation halted after chunk {index + 1}: {reason}")
        for phase in ACTIVATION:
            ok, failed = counts[phase]
            seconds = round(time.monotonic() - phase_t0[phase], 3)
            self.emit(PhaseDone(deploy_id, phase=phase, ok=ok, failed=failed, seconds=seconds, skipped=skipped[phase]))


# -- the failure policy ---------------------------------------------------------------------


class _Halt(Exception):
    """The failure policy or the metric watch stopped the deploy."""


def _mark(run: Run, out: Outcome) -> None:
    """Count a phase's failed hosts against the run (a host's first failure is its reason)."""
    for name, event in out.failed.items():
        run.failed.setdefault(name, f"{event.phase}: {event.reason}")


def _check_failures(run: Run, phase: str, *, activated: bool) -> None:
    """Past the failure budget, no further host is switched."""
    failed, allowed = len(run.failed), run.plan.allowed_failures
    if failed > allowed:
        where = "stopped before any further activation" if activated else "no host was switched"
        raise _Halt(f"{failed} host(s) failed by {phase}, over max_failures {allowed}: {where}")
