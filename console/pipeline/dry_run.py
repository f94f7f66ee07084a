"""What `invoke deploy --dry-run` prints: the plan, and per phase the exact command it runs.

The phase lines are made from the declarations the steps use (`delivery.ASSETS_RSYNC`,
`delivery.CODE_RSYNC`, the skip reasons of `steps.STEPS`, the builders of `remote`), so the
dry run cannot drift from what a deploy does. Commit subjects and authors are shown
`printable`, and secrets as `***`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from console.config.inventory import Host, Inventory
from console.core.text import printable, short
from console.fleet import remote
from console.fleet.tree import STRIPES, plan_tree
from console.pipeline.delivery import ASSETS_RSYNC, CODE_RSYNC
from console.pipeline.distribute import TREE_MIN
from console.pipeline.plan import Plan
from console.pipeline.steps import STEPS
from console.trunk.queue import Change


def describe(inventory: Inventory, plan: Plan, checkout: Path, live_release: str | None = None) -> str:
    """The plan as --dry-run prints it: phases, chunks, hosts and the exact commands."""
    inv, req = inventory, plan.request
    sample = plan.hosts[0]
    d = sample.deploy_path
    lines = [
        f"deploy {short(plan.revision)} to {inv.environment} as release {plan.release} (dry run: nothing changes)",
        f"  from {(plan.previous_revision or 'nothing live')[:12]}: {len(plan.commits)} commit(s)",
        *[f"    {_commit(c)}{'' if c.approved else '  NOT REVIEWED'}{'  DDL' if c.ddl else ''}" for c in plan.commits],
        *(
            [f"  takes {len(plan.departing)} live commit(s) off the fleet:"]
            + [f"    {_commit(c)}" for c in plan.departing]
            if plan.departing
            else []
        ),
        f"  strategy {inv.strategy}, chunk size {inv.chunk_size}, {len(plan.chunks)} chunk(s), "
        f"{'rolling activation' if req.rolling else 'activation after every host is staged'}, "
        f"max failures {plan.allowed_failures} of {len(plan.hosts)} hosts",
    ]
    if plan.refused and not req.override:
        lines.append("  WOULD BE REFUSED: " + plan.refused.replace("\n", "\n  "))
    for i, chunk in enumerate(plan.chunks, 1):
        lines.append(f"  chunk {i}: {', '.join(h.name for h in chunk)}")
    ssh = f"ssh {inv.ssh.user}@{{address}} -p {{port}}"
    assets = f"rsync -a {' '.join(ASSETS_RSYNC)} <build>/assets/ {{address}}:{remote.assets_dir(d)}/"
    code = f"rsync -a {' '.join(CODE_RSYNC)} <build>/code/ {{address}}:{remote.release_dir(d, plan.release)}/"
    lines += [
        "  phases:",
        f"    update       git fetch origin in {checkout}",
        f"    build        export {short(plan.revision)}, {inv.build_command or 'no build.command'}, "
        f"hash {inv.assets}/ into versioned names",
        f"    sync-assets  {assets}   (on each host before its code; on every host before any switch)",
        f"    sync-code    {code}   (right after that host's assets)",
        *_delta(plan, live_release),
        *_tree(inv, plan),
        f"    activate     {ssh} {remote.activate(d, plan.release, req.user)}",
        f"    restart      {_skipped(inv, 'restart') or _command(inv, inv.restart or '', sample)}",
        f"    verify       {_skipped(inv, 'verify') or _health(inv, sample, plan.revision)}",
        f"    cleanup      keep {inv.keep_releases} releases and their assets (never current or previous)",
    ]
    return "\n".join(lines)


def _commit(change: Change) -> str:
    return f"{change.short} {printable(change.subject, 100)} ({printable(change.author, 60)})"


def _command(inventory: Inventory, template: str, host: Host) -> str:
    """A template command as it runs on `host`, each secret shown as `***`."""
    return remote.shown(template, host, [s.name for s in inventory.secrets])


def tree_lines(hosts: Sequence[Host], port: int) -> list[str]:
    """Who feeds whom when `strategy: tree` carries a big change over `hosts`
    (console/pipeline/distribute.py), as --dry-run and the deploy dialog show it: what the
    tree is, then one line per stripe (none: too few hosts for a tree)."""
    if len(hosts) < STRIPES:
        return []
    tree = plan_tree(hosts)
    return [
        f"tree: {STRIPES} stripes of {tree.depth} levels, for a change of more than {TREE_MIN >> 10} KiB of new "
        f"assets, before the rsyncs (mbuffer, ports {port}-{port + STRIPES - 1})",
        *tree.describe(),
    ]


def _tree(inventory: Inventory, plan: Plan) -> list[str]:
    """`tree_lines` under the phase they come before."""
    if inventory.strategy != "tree":
        return []
    lines = tree_lines(plan.hosts, inventory.tree_port)
    return [f"                 {line}" for line in lines[:1]] + [f"                   {line}" for line in lines[1:]]


def _delta(plan: Plan, live_release: str | None) -> list[str]:
    """What replaces both rsyncs on a host at the live release (console/pipeline/delivery.py)."""
    if not plan.request.delta or not live_release:
        return []
    return [
        f"                 a host at {live_release} (the live release) as built, while the deploy host keeps its",
        "                 build, gets both in one command instead: the changed files and new assets on stdin",
    ]


def _skipped(inventory: Inventory, phase: str) -> str:
    reason = STEPS[phase].skipped(inventory)
    return f"(skipped: {reason})" if reason else ""


def _health(inventory: Inventory, host: Host, revision: str) -> str:
    health = inventory.health
    assert health is not None, "verify is skipped without a health check"
    if health.url:
        return f"GET {remote.url(health.url, host)} must answer {short(revision)}..."
    return f"{_command(inventory, health.command or '', host)} must print {short(revision)}..."
