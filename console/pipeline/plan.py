"""A deploy decided but not started: what a person asked for, and what it will do.

`plan_deploy` updates the checkout, resolves the ref, lists the commits the release ships
and the refusals (unreviewed or DDL commits), and chunks the hosts. It touches nothing on
any host, so `--dry-run` is a plan printed (`dry_run.describe`) and a deploy is a plan run.
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
from console.trunk.queue import Change, included, pending_changes, refusal_message, refusals


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
    """A deploy, switch or step decided but not started: what --dry-run prints and a run executes."""

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
    """Update the checkout, resolve the ref, find the commits it ships and the refusals.
    Touches nothing on any host."""
    inv = inventory
    t0 = time.monotonic()
    checkout.update()
    revision = checkout.resolve(request.ref)
    fetched = time.monotonic() - t0
    if not inv.build_command and not checkout.has_dir(revision, inv.assets):
        # bad input, refused like an unknown ref (a build.command may still make the directory)
        raise ConsoleError(
            f"{short(revision)} has no assets directory {inv.assets + '/'!r}: "
            f"expected the directory named by the inventory key assets ({inv.path})"
        )
    commits: list[Change] = []
    if revision != live_revision:
        try:
            queue = pending_changes(
                checkout.path, live_revision, revision, trailer=inv.review_trailer, ddl_paths=inv.ddl_paths
            )
        except ConsoleError as exc:
            raise ConsoleError(
                f"cannot list the commits between the live revision and {short(revision)}: {exc}"
            ) from None
        commits = included(queue, revision) if queue else []
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
    plan.refused = refusal_message(refusals(commits))
    plan.update_seconds = round(fetched, 3)
    return plan
