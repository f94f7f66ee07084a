"""A deploy decided but not started: what a person asked for, and what it will do.

`plan_deploy` updates the checkout, resolves the ref, lists the commits the release ships,
the live commits it takes off the fleet, and the refusals (unreviewed or DDL commits; a
commit off the branch, older than live, or one that takes live commits away), reads the
secrets and chunks the hosts. It touches nothing on any host, so `--dry-run` is a plan
printed (`dry_run.describe`) and a deploy is a plan run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from console.config.inventory import Host, Inventory
from console.core.errors import ConsoleError
from console.core.text import short
from console.fleet import remote
from console.fleet.fanout import chunked
from console.trunk.checkout import Checkout
from console.trunk.git import is_ancestor
from console.trunk.queue import Change, included, position_refusal, queue_for, refusal_message, refusals


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
    #: Off: every host by rsync, none by the change from the live release
    #: (console/pipeline/delivery.py): bench.deploy's baseline and the tests' control.
    delta: bool = True


@dataclass
class Plan:
    """A deploy, switch or step decided but not started: what --dry-run prints and a run executes."""

    deploy_id: str
    release: str
    revision: str
    previous_revision: str | None
    request: DeployRequest
    hosts: list[Host]
    chunks: list[list[Host]]
    commits: list[Change] = field(default_factory=list)
    #: live commits the deploy takes off the fleet (live is not in the revision's history)
    departing: list[Change] = field(default_factory=list)
    refused: str = ""
    allowed_failures: int = 0
    update_seconds: float = 0.0  # the fetch happens while planning, before the deploy starts


def plan_over(
    inventory: Inventory,
    hosts: list[Host],
    *,
    deploy_id: str,
    release: str,
    revision: str,
    previous_revision: str | None,
    request: DeployRequest,
) -> Plan:
    """A plan over `hosts`: chunked, with the failure budget the inventory gives them."""
    return Plan(
        deploy_id=deploy_id,
        release=release,
        revision=revision,
        previous_revision=previous_revision,
        request=request,
        hosts=hosts,
        chunks=chunked(hosts, inventory.chunk_size),
        allowed_failures=inventory.allowed_failures(len(hosts)),
    )


def select_hosts(inventory: Inventory, names: Sequence[str]) -> list[Host]:
    """The named hosts in the order given, each once (none named: the whole fleet)."""
    if not names:
        return list(inventory.hosts)
    return [inventory.host(n) for n in dict.fromkeys(names)]


def plan_deploy(
    inventory: Inventory,
    checkout: Checkout,
    live_revision: str | None,
    request: DeployRequest,
    *,
    deploy_id: str | None = None,
) -> Plan:
    """Update the checkout, resolve the ref, find the commits it ships, those it takes off
    the fleet and the refusals; check the secrets can be read. Touches nothing on any host."""
    inv = inventory
    inv.secret_values()  # a missing secret stops the deploy here, not after the switch
    t0 = time.monotonic()
    checkout.update()
    revision = checkout.resolve(request.ref)
    on_branch = is_ancestor(checkout.path, revision, checkout.tip())
    fetched = time.monotonic() - t0
    if not inv.build_command and not checkout.has_dir(revision, inv.assets):
        # bad input, refused like an unknown ref (a build.command may still make the directory)
        raise ConsoleError(
            f"{short(revision)} has no assets directory {inv.assets + '/'!r}: "
            f"expected the directory named by the inventory key assets ({inv.path})"
        )
    queue = queue_for(checkout.path, live_revision, revision, trailer=inv.review_trailer, ddl_paths=inv.ddl_paths)
    commits = included(queue.changes, revision) if queue.changes else []
    release = remote.release_id(revision)
    plan = plan_over(
        inv,
        select_hosts(inv, request.hosts),
        deploy_id=deploy_id or release,
        release=release,
        revision=revision,
        previous_revision=live_revision,
        request=request,
    )
    plan.commits = commits
    plan.departing = queue.departing
    position = position_refusal(queue, on_branch=on_branch, branch=inv.branch)
    plan.refused = "\n".join(m for m in (position, refusal_message(refusals(commits))) if m)
    plan.update_seconds = round(fetched, 3)
    return plan
