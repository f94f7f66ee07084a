"""A deploy or switch as a process of its own (`python -m console.session.detach`).

`start_detached` spawns the child (console/session/spawn.py) and waits for its handoff
file: the child writes `planned <deploy id>` once it holds the lock and has planned, or
`error <one line>` (lock held, refused range, unknown ref), so the caller learns the id or
the reason in one line. From then on the deploy depends on nobody: any console or `invoke
status --follow` attaches through its event log. The child stops at the next safe point
on SIGTERM, and ignores SIGINT and SIGHUP (the terminal that started it may close).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from console.config.inventory import Inventory, load_inventory
from console.core.errors import ConsoleError
from console.pipeline.plan import DeployRequest
from console.session.runs import run_deploy, run_switch
from console.session.spawn import runs_dir, spawn
from console.state.files import write_private

MODULE = "console.session.detach"


def start_detached(inventory: Inventory, request: DeployRequest, *, timeout: float = 180.0) -> str:
    """Start a deploy in a process of its own; returns its deploy id once it is planned
    (or raises the child's one-line error: lock held, refused range, unknown ref)."""
    return _start(inventory, {"deploy": asdict(request)}, timeout)


def start_detached_switch(inventory: Inventory, release: str | None, user: str, *, timeout: float = 60.0) -> str:
    """Start a switch in a process of its own; returns its deploy id once it holds the lock."""
    return _start(inventory, {"switch": {"release": release, "user": user}}, timeout)


def _start(inventory: Inventory, job: dict[str, Any], timeout: float) -> str:
    runs = runs_dir(inventory)
    stamp = f"{time.time():.6f}-{os.getpid()}"
    handoff, output = runs / f"{stamp}.handoff", runs / f"{stamp}.out"
    child = spawn(MODULE, inventory, job, output, "--handoff", str(handoff))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handoff.exists():
            kind, _, text = handoff.read_text().partition(" ")
            if kind == "planned":
                return text.strip()
            raise ConsoleError(text.strip())
        if child.poll() is not None and not handoff.exists():
            lines = output.read_text(errors="replace").strip().splitlines()
            raise ConsoleError(f"the deploy process exited {child.returncode}: {lines[-1] if lines else 'no output'}")
        time.sleep(0.05)
    raise ConsoleError(f"the deploy process did not report within {timeout:g} s (see {output})")


def main(argv: list[str]) -> int:
    """The child: run the job, reporting through the handoff file (see the module doc)."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--handoff", required=True)
    args = parser.parse_args(argv)
    job = json.loads(args.job)
    handoff = Path(args.handoff)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # stop at the next safe point
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def planned(deploy_id: str) -> None:
        write_private(handoff, f"planned {deploy_id}")

    try:
        inventory = load_inventory(args.inventory)
        if "deploy" in job:
            spec = job["deploy"]
            spec["hosts"] = tuple(spec.get("hosts") or ())
            run_deploy(inventory, DeployRequest(**spec), stop=stop, on_planned=planned)
        else:
            spec = job["switch"]
            run_switch(inventory, spec["release"], spec["user"], stop=stop, on_planned=planned)
    except ConsoleError as exc:
        if not handoff.exists():
            write_private(handoff, f"error {exc}")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
