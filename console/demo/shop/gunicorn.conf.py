"""gunicorn's settings for the shop: `gunicorn --config {deploy_path}/current/gunicorn.conf.py`.

gunicorn reads this file when it starts and again on every reload (SIGHUP), through the
`current` symlink, so each release brings its own settings. Paths come from where this
file really is: {deploy_path}/releases/<id>/gunicorn.conf.py. It imports nothing of the
shop: the master must never hold a release's modules, or the workers it forks after a
reload would inherit them (`on_reload` loads the application in a fork, to see that it
loads, before gunicorn starts the new worker).
"""

import os
import sys

_deploy_path = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
_run = os.path.join(_deploy_path, "run")

wsgi_app = "shop.wsgi:application"
# A worker imports the shop through `current`, resolved when it imports, so the workers a
# reload starts load the release `current` points to then. The master itself stays in the
# deploy path (never in a release a cleanup could remove) and never imports the shop
# (no preload_app: a preloaded master would fork every new worker with the old code).
pythonpath = os.path.join(_deploy_path, "current")
chdir = _deploy_path
pidfile = os.path.join(_run, "gunicorn.pid")
errorlog = os.path.join(_run, "gunicorn.log")
capture_output = True  # the shop's tracebacks (stderr) go to gunicorn.log too
loglevel = "warning"

# One worker process, so /metrics counts the whole host; its threads serve side by side.
worker_class = "gthread"
workers = 1
threads = 8
# Every response closes its connection: a reload never strands a keep-alive connection on a
# worker that is going away.
keepalive = 0
timeout = 30
graceful_timeout = 30  # how long an old worker may take to finish its requests


def on_starting(server):
    """The master starts: load the standard library the shop uses (`_preload`)."""
    _preload()


def _preload():
    """Import, in the master, the standard library modules the shop imports and gunicorn has
    not (never the shop's own: they change with each release), so every fork inherits them:
    the reload's check and each new worker imported them afresh, ~10 ms of CPU per host per
    deploy. Here, not at the top: ctl.py loads this file on every reload and needs none."""
    import http  # noqa: F401
    import json  # noqa: F401
    import mimetypes  # noqa: F401


def on_reload(server):
    """Before this reload starts its worker: does the release `current` points to load?

    gunicorn stops altogether when a new worker cannot load the application (and it has
    already told the old worker to go), so the application is loaded first in a fork of
    this master, as the worker would be; the master itself never imports it. If it does
    not load, this reload starts no worker, the old one goes on serving the old release,
    and run/gunicorn.refused says why (ctl.py reports it). ctl.py has loaded this file
    itself before the SIGHUP: one that does not load would make the master exit."""
    _preload()  # a master started before this file had it
    why = _loads(server.cfg.wsgi_app, server.cfg.graceful_timeout)
    if why:
        server.cfg.set("workers", 0)  # no new worker; the master still wants one worker, the old one
        path = os.path.join(_run, "gunicorn.refused")
        with open(f"{path}.{os.getpid()}", "w", encoding="utf-8") as f:
            f.write(why + "\n")
        os.replace(f"{path}.{os.getpid()}", path)
        _wake_ctl()


def _loads(wsgi_app, limit):
    """Empty if `module:name` imports in a fork of this process within `limit` seconds,
    else what failed (`SyntaxError: ... (pages.py, line 54)`, `KeyError: 'x' (shop/app.py:70)`).
    The child exits 0 either way (gunicorn's own reaping takes 3 and 4 for a worker that
    failed to boot, and stops). Imported here, not at the top: ctl.py loads this file on
    every reload, and the master has all of them already."""
    import importlib
    import select
    import signal
    import time

    release = os.path.realpath(os.path.join(_deploy_path, "current"))
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: load, say how it went, and leave without Python's shutdown
        os.close(reader)
        try:
            module, _, name = wsgi_app.partition(":")
            getattr(importlib.import_module(module), name)
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - whatever fails, the reload is refused
            os.write(writer, f"{release} does not load: {_where(exc, release)}".encode("utf-8", "replace")[:4000])
        os._exit(0)
    os.close(writer)
    answer, deadline = b"", time.monotonic() + limit
    try:
        while select.select([reader], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(reader, 4096)
            if not chunk:
                return answer.decode("utf-8", "replace").strip()
            answer += chunk
        os.kill(pid, signal.SIGKILL)
        return f"{release} did not load within {limit:g} s"
    finally:
        os.close(reader)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # gunicorn's SIGCHLD handler reaped it


def _where(exc, release):
    """`SyntaxError: ... (pages.py, line 54)` or `KeyError: 'x' (shop/app.py:70)`."""
    import traceback

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        return text  # its message names the file and the line
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    current = os.path.join(_deploy_path, "current")  # the worker's path to the release
    within = current if frame.filename.startswith(current + os.sep) else release
    return f"{text} ({os.path.relpath(frame.filename, within)}:{frame.lineno})"


def post_worker_init(worker):
    """Once the worker has loaded the shop: make SIGTERM stop it accepting at once, and tell
    ctl.py it serves (run/gunicorn.ready: "<worker pid> <revision>").

    A gthread worker waits for connections in `poller.select(1.0)`, which a signal does not
    cut short (PEP 475), so after a reload's SIGTERM an old worker would go on accepting for
    up to a second, and answer with the old release after ctl.py said the new one serves.
    gunicorn already writes every signal to `worker.PIPE` (signal.set_wakeup_fd); watching
    that pipe in the poller wakes the worker, which then sees it must stop and stops accepting.
    """
    import selectors  # here, not at the top: the worker has it already, ctl.py would pay 4 ms

    poller = getattr(worker, "poller", None)
    if poller is not None:
        poller.register(worker.PIPE[0], selectors.EVENT_READ, _drain)
    path = os.path.join(_run, "gunicorn.ready")
    with open(f"{path}.{worker.pid}", "w", encoding="utf-8") as f:
        f.write(f"{worker.pid} {worker.wsgi.revision}\n")
    os.replace(f"{path}.{worker.pid}", path)
    _wake_ctl()


def _wake_ctl():
    """A byte to run/gunicorn.wake, the FIFO a waiting ctl.py sleeps on (ctl.py's `Wake`)."""
    try:
        fd = os.open(os.path.join(_run, "gunicorn.wake"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no FIFO yet, or nobody waits on it (ENXIO): ctl.py looks at the files first
        return
    try:
        os.write(fd, b"\n")
    except OSError:
        pass
    finally:
        os.close(fd)


def worker_exit(server, worker):
    """A worker that has finished its requests leaves at once, without Python's shutdown.

    That shutdown tears down every module the worker inherited from the master (gunicorn
    with pkg_resources), touching and so copying, page by page, the heap they share: 100 to
    200 ms of CPU per old worker on a busy 2-core machine, on every host on every deploy.
    gunicorn also calls this hook in the master (for a worker that vanished) and in a worker
    that failed to boot, whose exit status the master needs: both go on as usual.
    """
    if os.getpid() == worker.pid and worker.booted and not worker.alive:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _drain(fd):
    try:
        os.read(fd, 512)
    except BlockingIOError:
        pass
