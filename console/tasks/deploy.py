"""The deploy tasks: `invoke deploy` and each of its steps, status, history, queue, lock, abort.

A thin command line over the engine: each task loads the inventory, calls one engine
function and prints. Every failure a person can fix ends as one line (`invoke` exits 1),
never a traceback. No task ever prompts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

from invoke import task
from invoke.exceptions import Exit

from console.config.inventory import Inventory, load_inventory
from console.core.errors import ConsoleError
from console.core.progress import DeployView
from console.core.text import check_line, local_time, printable, short
from console.pipeline.plan import DeployRequest
from console.session.abort import abort as abort_deploy
from console.session.detach import start_detached, start_detached_switch
from console.session.hold import Session, current_user
from console.session.runs import only_hosts, run_deploy, run_step, run_switch
from console.tasks.errors import clear_errors
from console.tasks.flags import whole_number
from console.tasks.report import LivePrinter, summary
from console.trunk.queue import queue_for, to_json

DEFAULT_INVENTORY = os.environ.get("DEPLOY_INVENTORY", "hosts/lab.yaml")
INVENTORY_HELP = f"inventory YAML file (default {DEFAULT_INVENTORY}, or $DEPLOY_INVENTORY)"


def _inventory(path: str | None) -> Inventory:
    return load_inventory(path or DEFAULT_INVENTORY)


def _follow(session: Session, deploy_id: str) -> str:
    """Print a running deploy's events until it ends; returns its result."""
    printer = LivePrinter()
    for event in session.log.follow(deploy_id):
        printer(event)
    return printer.view.done.result if printer.view.done else "unknown"


def _stop_on_ctrl_c() -> threading.Event:
    """Ctrl-C on a foreground deploy stops at the next safe point (between chunks), and so
    does SIGTERM, as for a detached deploy (`invoke abort` sends it)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if signum == signal.SIGTERM:
            print("\naborted (SIGTERM): stopping at the next safe point (between chunks)", file=sys.stderr)
        elif stop.is_set():
            raise KeyboardInterrupt
        else:
            print("\nstopping at the next safe point (between chunks); Ctrl-C again to quit now", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _exit_for(result: str) -> None:
    if result not in ("ok",):
        raise Exit(code=0 if result == "partial" else 1)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "ref": "commit, tag or branch of trunk to deploy (default: the branch tip)",
        "override": "deploy an unreviewed or DDL range anyway; the reason goes into history and notifications",
        "only": "'failed' (the hosts that failed last time) or a comma-separated list of host names",
        "rolling": "activate chunk by chunk with restart, verify and the metric watch between chunks",
        "dry_run": "print the plan (phases, chunks, hosts, exact remote commands) and change nothing",
        "detach": "run the deploy as its own process (survives this terminal), then follow it",
    }
)
@clear_errors
def deploy(c, inventory=None, ref=None, override=None, only=None, rolling=False, dry_run=False, detach=False):
    """Deploy trunk: update, build, assets to every host, code, switch, restart, verify."""
    if dry_run and detach:
        raise ConsoleError(
            "--dry-run and --detach exclude each other: a dry run changes nothing, so nothing runs detached"
        )
    if override is not None:
        check_line(override, "--override", limit=500)
    inv = _inventory(inventory)
    session = Session(inv)
    request = DeployRequest(
        user=current_user(), ref=ref, override=override, hosts=only_hosts(inv, session.history, only), rolling=rolling
    )
    if dry_run:
        pipeline = session.pipeline()
        print(pipeline.describe(pipeline.plan(request)))
        return
    if detach:
        deploy_id = start_detached(inv, request)
        print(f"deploy {deploy_id} runs detached; following it (Ctrl-C stops following, not the deploy)")
        _exit_for(_follow(session, deploy_id))
        return
    done = run_deploy(inv, request, printer=LivePrinter(), stop=_stop_on_ctrl_c())
    _exit_for(done.result)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "release": "release id to switch to (default: the one before the live one)",
        "detach": "run as its own process, then follow it",
    }
)
@clear_errors
def switch(c, inventory=None, release=None, detach=False):
    """Switch every host back (or forward) to an existing release: activate, restart, verify."""
    inv = _inventory(inventory)
    if detach:
        deploy_id = start_detached_switch(inv, release, current_user())
        _exit_for(_follow(Session(inv), deploy_id))
        return
    done = run_switch(inv, release, current_user(), printer=LivePrinter(), stop=_stop_on_ctrl_c())
    _exit_for(done.result)


@task(help={"inventory": INVENTORY_HELP, "deploy": "the id of the running deploy (default: the newest)"})
@clear_errors
def abort(c, inventory=None, deploy=None):
    """Stop the running deploy at its next safe point (between chunks); hosts already switched stay switched."""
    inv = _inventory(inventory)
    deploy_id = abort_deploy(Session(inv), current_user(), deploy)
    print(f"{deploy_id}: asked to stop at the next safe point; invoke status --follow shows where it stopped")


@task(
    help={
        "inventory": INVENTORY_HELP,
        "follow": "attach to the running deploy and print it live until it ends",
        "json": "print the per-host status as JSON",
        "deploy": "a deploy id (default: the newest)",
    }
)
@clear_errors
def status(c, inventory=None, follow=False, json_=False, deploy=None):
    """Per-host status of the running or last deploy; --follow attaches to a running one."""
    inv = _inventory(inventory)
    session = Session(inv)
    deploy_id = deploy or session.log.latest()
    if not deploy_id:
        raise ConsoleError(f"no deploy of {inv.environment} has run yet ({inv.state_dir})")
    if follow and not json_:
        _follow(session, deploy_id)
        return
    view = DeployView.of(session.log.read(deploy_id))
    lock = session.lock.status()
    if json_:
        data = {
            "deploy_id": deploy_id,
            "running": view.running and session.log.running(deploy_id),
            "result": view.done.result if view.done else None,
            "lock": lock.to_dict() if lock else None,
            "phases": {p.name: vars(p) for p in view.phases.values()},
            "hosts": {h.name: vars(h) for h in view.hosts.values()},
            "verdicts": {m: v.verdict for m, v in view.verdicts.items()},
        }
        print(json.dumps(data, indent=1, default=str))
        return
    print(summary(view, notices=True))
    if view.running and not session.log.running(deploy_id):
        pid = view.started.pid if view.started else 0
        print(f"interrupted: the deploy process {pid} ended without recording its end")
    print(lock.describe() if lock else f"{inv.environment}: not locked")


@task(help={"inventory": INVENTORY_HELP, "json": "print as JSON", "limit": "how many deploys (default 20)"})
@clear_errors
def history(c, inventory=None, json_=False, limit=None):
    """Past deploys and switches: who, what, when, how long, result, verdicts."""
    count = whole_number(limit, "--limit", default=20, high=100_000)
    inv = _inventory(inventory)
    session = Session(inv)
    if json_:
        print(json.dumps(session.history.to_json(count, environment=inv.environment), indent=1, default=str))
        return
    records = session.history.deploys(count, environment=inv.environment)
    if not records:
        print(f"no deploys of {inv.environment} yet")
    for r in records:
        state = r.state
        took = f"{r.ended - r.started:6.1f} s" if r.ended else state
        print(
            f"{printable(r.id, 40):<34} {printable(r.action, 8):<6} {printable(r.user, 40):<10} "
            f"{short(r.previous_revision, '-')}..{short(r.revision, '-')} "
            f"{took:>9} {state:<8} {printable(r.message or '')}".rstrip()
        )


@task(help={"inventory": INVENTORY_HELP, "json": "print as JSON"})
@clear_errors
def queue(c, inventory=None, json_=False):
    """The reviewed-change queue: commits on trunk after the live revision, newest first, as the
    console lists them (1 is the oldest: the next to go out; --json lists them oldest first)."""
    inv = _inventory(inventory)
    session = Session(inv)
    pipeline = session.pipeline()
    pipeline.checkout.update()
    live, tip = pipeline.live_revision, pipeline.checkout.tip()
    found = queue_for(pipeline.checkout.path, live, tip, trailer=inv.review_trailer, ddl_paths=inv.ddl_paths)
    changes = found.changes
    if json_:
        departing = [to_json(ch) for ch in found.departing]
        print(json.dumps({"live": live, "queue": [to_json(ch) for ch in changes], "departing": departing}, indent=1))
        return
    print(
        f"{inv.environment}: live {short(live, 'nothing')}, {len(changes)} undeployed commits,"
        " newest first (a deploy of one ships it and every one below it)"
    )
    if not found.live_known:
        print(
            f"  live {short(live)} is not in trunk's repository: the queue is all of {inv.branch} (deploy with --override)"
        )
    elif found.departing:
        print(
            f"  live {short(live)} is not on {inv.branch}: the queue starts where they part; deploying takes "
            f"{len(found.departing)} live commit(s) off the fleet (deploy with --override):"
        )
        for ch in found.departing:
            print(f"      {ch.short} {printable(ch.subject, 120)} ({printable(ch.author, 60)})")
    now = time.time()
    for n, ch in reversed(list(enumerate(changes, 1))):
        flags = ("" if ch.approved else " [NOT REVIEWED]") + (" [DDL]" if ch.ddl else "")
        subject, author = printable(ch.subject, 120), printable(ch.author, 60)
        print(f"  {n:>2}. {ch.short} {subject} ({author}, {int((now - ch.time) // 60)} min ago){flags}")


@task(help={"inventory": INVENTORY_HELP, "reason": "why the environment is held (required)"})
@clear_errors
def lock(c, inventory=None, reason=""):
    """Hold the environment on purpose: no deploy or automation runs until `invoke unlock`."""
    check_line(reason, "--reason", limit=500)
    inv = _inventory(inventory)
    info = Session(inv).lock.acquire(current_user(), reason)
    print(f"{inv.environment}: locked by {printable(info.who, 64)}: {printable(info.reason)}")


@task(help={"inventory": INVENTORY_HELP, "force": "take over someone else's or a stale lock (recorded in history)"})
@clear_errors
def unlock(c, inventory=None, force=False):
    """Release the environment's lock; --force takes over a stale or foreign lock (recorded)."""
    inv = _inventory(inventory)
    released = Session(inv).lock.release(current_user(), force=force)
    print(f"{inv.environment}: unlocked" + (f" (was: {released.describe()})" if released else " (was not locked)"))


@task(help={"inventory": INVENTORY_HELP, "deploy": "a deploy id (default: the newest)"})
@clear_errors
def watch(c, inventory=None, deploy=None):
    """Show the key-metric verdicts of the newest deploy live, until every metric's final verdict."""
    inv = _inventory(inventory)
    session = Session(inv)
    deploy_id = deploy or session.log.latest()
    if not deploy_id:
        raise ConsoleError(f"no deploy of {inv.environment} has run yet ({inv.state_dir})")
    if not inv.metrics.key:
        raise ConsoleError(f"{inv.path}: no key metrics (metrics.key) to watch")
    print(f"watching {deploy_id}: {', '.join(m.name for m in inv.metrics.key)} (Ctrl-C stops watching)")
    shown: set[tuple[str, float]] = set()
    deadline = time.time() + inv.metrics.watch + 60
    while time.time() < deadline:
        verdicts = session.history.verdicts(deploy_id)
        for v in verdicts:
            if (v.metric, v.ts) not in shown:
                shown.add((v.metric, v.ts))
                stamp = local_time(v.ts, date=False)
                print(
                    f"  {stamp} {printable(v.metric, 60)}: {printable(v.verdict, 20)}{' (final)' if v.final else ''}: "
                    f"{printable(v.summary)}{' (dry run)' if v.dry_run else ''}",
                    flush=True,
                )
        if {m.name for m in inv.metrics.key} <= {v.metric for v in verdicts if v.final}:
            return
        time.sleep(2)
    raise ConsoleError(f"no final verdicts for {deploy_id} within the watch window; is a watcher running?")


# -- the steps one by one ------------------------------------------------------------------


@task(help={"inventory": INVENTORY_HELP, "ref": "commit, tag or branch (default: the branch tip)"})
@clear_errors
def update(c, inventory=None, ref=None):
    """Bring the deploy host's checkout of trunk to REF (fetch, never re-clone); print the commit."""
    inv = _inventory(inventory)
    pipeline = Session(inv).pipeline()
    pipeline.checkout.update()
    sha = pipeline.checkout.resolve(ref)
    print(f"{sha} {printable(pipeline.checkout.subject(sha))}")


@task(help={"inventory": INVENTORY_HELP, "ref": "commit, tag or branch (default: the branch tip)"})
@clear_errors
def build(c, inventory=None, ref=None):
    """Build a release of REF: run build.command, hash and minify assets, write the manifest."""
    inv = _inventory(inventory)
    pipeline = Session(inv).pipeline()
    b = pipeline.build_only(DeployRequest(user=current_user(), ref=ref, override="build only"))
    print(f"built release {b.release} ({short(b.revision)}): {len(b.manifest)} assets in {b.root}")


def _step_task(phase: str, doc: str) -> Any:
    @clear_errors
    def body(c, inventory=None):
        done = run_step(_inventory(inventory), phase, current_user(), printer=LivePrinter())
        _exit_for(done.result)

    body.__doc__ = doc
    body.__name__ = phase.replace("-", "_")
    return task(body, name=phase, help={"inventory": INVENTORY_HELP})


sync_assets = _step_task("sync-assets", "rsync the newest build's versioned assets to every host.")
sync_code = _step_task("sync-code", "rsync the newest build's code into releases/<id> on every host (hard-linked).")
activate = _step_task("activate", "Switch every host's current symlink to the newest build, atomically.")
restart = _step_task("restart", "Run the inventory's graceful restart command on every host.")
verify = _step_task("verify", "Check that every host serves the newest build's revision (the health check).")
cleanup = _step_task("cleanup", "Remove releases older than keep_releases and assets no kept release uses.")

TASKS = (
    deploy,
    switch,
    abort,
    status,
    history,
    queue,
    watch,
    lock,
    unlock,
    update,
    build,
    sync_assets,
    sync_code,
    activate,
    restart,
    verify,
    cleanup,
)
