"""Abort a running deploy at its next safe point, from any process on the deploy host.

A deploy, detached (`console.session.detach`) or in the foreground (`invoke deploy`), stops
at the next safe point on SIGTERM: between chunks, never between a host's staging and its
switch. `abort` finds the deploy's process in its event log (`DeployStarted.pid`) and sends
it SIGTERM only if the environment's lock names that same deploy and process on this host,
so a pid the kernel has since given to another process is never signalled. Who asked is
written to the audit log; the deploy itself ends `aborted`, saying where it stopped.
"""

from __future__ import annotations

import os
import signal
import socket

from console.core.errors import ConsoleError
from console.core.events import DeployDone, DeployStarted
from console.session.hold import Session
from console.state.files import pid_alive


def abort(session: Session, user: str, deploy_id: str | None = None) -> str:
    """Ask the running deploy `deploy_id` (default: the newest) to stop at its next safe
    point; returns its id. A deploy that is not running raises ConsoleError."""
    env = session.inventory.environment
    deploy_id = deploy_id or session.log.latest()
    if not deploy_id:
        raise ConsoleError(f"no deploy of {env} has run yet: nothing to abort")
    events = session.log.read(deploy_id)
    started = next((e for e in events if isinstance(e, DeployStarted)), None)
    done = next((e for e in events if isinstance(e, DeployDone)), None)
    if done is not None:
        raise ConsoleError(f"{deploy_id} already ended {done.result}: nothing to abort")
    if started is None or not started.pid or not pid_alive(started.pid):
        raise ConsoleError(f"{deploy_id} is not running: its process is gone")
    lock = session.lock.status()
    if lock is None or lock.pid != started.pid or lock.deploy_id != deploy_id or lock.hostname != socket.gethostname():
        raise ConsoleError(f"{deploy_id}: the lock does not name its process {started.pid}; not signalling it")
    try:
        os.kill(started.pid, signal.SIGTERM)
    except OSError as exc:
        raise ConsoleError(f"{deploy_id}: cannot signal its process {started.pid}: {exc.strerror}") from None
    session.history.add_audit(env, user, "abort", f"deploy {deploy_id} (process {started.pid})")
    return deploy_id
