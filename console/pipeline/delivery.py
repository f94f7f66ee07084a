"""How a host gets a release: its assets, then its code (a deploy's staging).

The staging phases (`sync-assets`, then `sync-code` on the same host, console/pipeline/
steps.py) ask the run's `Delivery`; `choose` picks one per run, and a delivery may still
treat each host its own way. Whatever the delivery, the staging's guarantees hold: a
host's code only after its own assets, no code for a host that did not get its assets, a
partial staging removed, nothing live before activate (and activate only after every
host's staging, console/pipeline/run.py).

- `RsyncDelivery`, today's and every other's fallback: an rsync of the assets
  (`--ignore-existing`: a hashed name never changes its content), then one of the code
  into releases/<id>, hard-linked against the live release (`--link-dest`).
- `DeltaDelivery`, for a change from the live release L whose build the deploy host
  still has (console/pipeline/delta.py): a host at L gets the new assets and the changed
  code in one command over its open connection (`remote.stage`), which also brings back
  cleanup's survey. rsync's walk of both trees, its process on both sides and the
  survey's own session are what it saves. A host that is not at L as built (new, failed
  earlier, changed by hand) says so and gets `RsyncDelivery`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from console.config.inventory import Host
from console.core.errors import ConsoleError
from console.fleet import remote
from console.fleet.connection import HostError
from console.fleet.fanout import Later
from console.pipeline.delta import MAX_COMMAND, Delta, NotADelta, delta
from console.trunk.build import stored_build

if TYPE_CHECKING:
    from console.pipeline.steps import Run

#: sync-assets: a hashed name never changes its content, so a file a host has is never sent again.
#: Whatever the build's modes: readable by all (the web server), writable by the deploy user only.
RSYNC_MODES = "--chmod=u+rwX,go+rX,go-w"
ASSETS_RSYNC = ("--ignore-existing", "--mkpath", RSYNC_MODES)
#: sync-code: --link-dest is relative to the new release dir: unchanged files become hard links
#: to the live release's, so a one-file change sends one file and costs no disk.
CODE_RSYNC = ("--delete", "--mkpath", "--link-dest=../../current/", RSYNC_MODES)


class Delivery(Protocol):
    """How the run's hosts get its build: each host's assets, then (if they came) its code.
    Each returns (bytes sent, message) or raises HostError, as a step does."""

    def assets(self, run: Run, host: Host) -> tuple[int, str]: ...

    def code(self, run: Run, host: Host) -> tuple[int, str]: ...


def remove_partial(run: Run, host: Host, exc: HostError) -> None:
    """Never leave a half-staged release behind (a full disk, a cut link): remove it, and
    say in the failure whether that worked."""
    try:
        run.connection(host).run(
            remote.remove_release(host.deploy_path, run.plan.release),
            what="remove partial staging",
            timeout=min(10.0, run.inventory.timeouts.command),
        )
        exc.reason += "; partial staging removed"
    except HostError:
        exc.reason += "; partial staging could not be removed"


class RsyncDelivery:
    """Two rsyncs over the host's connection: the assets, then the code."""

    def assets(self, run: Run, host: Host) -> tuple[int, str]:
        build = run.shipped()
        sent = run.connection(host).rsync(build.assets, remote.assets_dir(host.deploy_path), ASSETS_RSYNC)
        return sent, f"{len(build.manifest)} assets"

    def code(self, run: Run, host: Host) -> tuple[int, str]:
        release = run.plan.release
        try:
            sent = run.connection(host).rsync(
                run.shipped().code, remote.release_dir(host.deploy_path, release), CODE_RSYNC
            )
        except HostError as exc:
            remove_partial(run, host, exc)
            raise
        return sent, f"staged {release}"


RSYNC = RsyncDelivery()


def _cause(exc: HostError) -> str:
    """The line that says why a stage failed (tar's closing summary says nothing)."""
    lines = [line for line in exc.output.splitlines() if "Exiting with failure status" not in line]
    return lines[-1].strip() if lines else exc.reason


class DeltaDelivery:
    """Hosts at the live release get the change in one command; the others `RSYNC`.

    The command stages the code too (one tar, the assets first): `assets` keeps the
    code's outcome, and `code`, which the fanout runs right after on the same host,
    reports it. The staging runs every host at once (a few KiB each); a host that needs
    rsync is put off (`Later`) and rsynced when the fanout comes back to it, a chunk at a
    time, after the others."""

    def __init__(self, change: Delta) -> None:
        self.change = change
        self._code: dict[str, tuple[int, str] | HostError] = {}  # host -> its code's outcome
        self._by_rsync: set[str] = set()  # hosts not at the live release as built

    def _rsync(self, run: Run, host: Host) -> tuple[int, str]:
        first = host.name not in self._by_rsync
        self._by_rsync.add(host.name)
        if first:
            raise Later
        return RSYNC.assets(run, host)

    def assets(self, run: Run, host: Host) -> tuple[int, str]:
        if host.name in self._by_rsync:  # put off in the wide pass
            return self._rsync(run, host)
        change = self.change
        command = remote.stage(
            host.deploy_path,
            base=change.base,
            base_revision=change.base_revision,
            release=change.release,
            assets_bytes=change.assets_tar,
            needed=change.needed,
            linked=change.linked,
            linked_stat=change.linked_stat,
        )
        if len(command) > MAX_COMMAND:  # too many files to name
            return self._rsync(run, host)
        assets = f"{len(run.shipped().manifest)} assets, " + (
            f"{len(change.brought)} new through the fleet (the code in one tar)"
            if change.brought
            else f"{len(change.new_assets)} new (one tar with the code)"
        )
        try:
            answer = run.connection(host).run(
                command, stdin=change.payload, what="stage", timeout=run.inventory.timeouts.sync
            )
        except HostError as exc:
            if exc.exit_code == remote.CODE_FAILED:  # the assets came; the code did not, and is gone
                self._code[host.name] = HostError(
                    f"{_cause(exc)}; partial staging removed", exit_code=exc.exit_code, output=exc.output
                )
                return len(change.payload), assets
            if exc.exit_code == remote.ASSETS_FAILED:  # and the code is gone
                raise HostError(_cause(exc), exit_code=exc.exit_code, output=exc.output) from None
            if exc.reached:  # lost or timed out: where it stopped is unknown
                remove_partial(run, host, exc)
            raise
        survey = remote.parse_staged(answer.stdout)
        if survey is None:  # not at the live release as built: why is in the live log
            return self._rsync(run, host)
        run.surveys[host.name] = survey
        self._code[host.name] = (0, f"staged {change.release}: {change.summary}")
        return len(change.payload), assets

    def code(self, run: Run, host: Host) -> tuple[int, str]:
        if host.name in self._by_rsync:
            return RSYNC.code(run, host)
        outcome = self._code.pop(host.name, None)
        if outcome is None:  # not reached: the fanout runs a host's code only after its assets
            raise HostError("no code was staged with the assets")
        if isinstance(outcome, HostError):
            raise outcome
        run.output.write(host.name, "sync-code", [f"(staged by sync-assets' command: {self.change.summary})"])
        return outcome


def choose(run: Run, base_release: str | None, *, brought: bool = False) -> Delivery:
    """The run's delivery: the change from `base_release` (the live one) where the deploy
    host has its build and the change is small (console/pipeline/delta.py), else rsync.
    `brought`: the tree pass has brought the new assets, so only the code counts."""
    build = run.shipped()
    if not run.plan.request.delta or not base_release or base_release == build.release:
        return RSYNC
    try:
        base = stored_build(run.inventory.state_dir / "builds", base_release)
        return DeltaDelivery(delta(base, build, brought=brought))
    except (ConsoleError, NotADelta, OSError):
        return RSYNC
