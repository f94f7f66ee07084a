"""gunicorn's settings for the shop: `gunicorn --config {deploy_path}/current/gunicorn.conf.py`.

gunicorn reads this file when it starts and again on every reload (SIGHUP), through the
`current` symlink, so each release brings its own settings. Paths come from where this
file really is: {deploy_path}/releases/<id>/gunicorn.conf.py. It imports nothing of the
shop: the master must never hold a release's modules, or the workers it forks after a
reload would inherit them.
"""

import os
import selectors
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


def post_worker_init(worker):
    """Once the worker has loaded the shop: make SIGTERM stop it accepting at once, and tell
    ctl.py it serves (run/gunicorn.ready: "<worker pid> <revision>").

    A gthread worker waits for connections in `poller.select(1.0)`, which a signal does not
    cut short (PEP 475), so after a reload's SIGTERM an old worker would go on accepting for
    up to a second, and answer with the old release after ctl.py said the new one serves.
    gunicorn already writes every signal to `worker.PIPE` (signal.set_wakeup_fd); watching
    that pipe in the poller wakes the worker, which then sees it must stop and stops accepting.
    """
    poller = getattr(worker, "poller", None)
    if poller is not None:
        poller.register(worker.PIPE[0], selectors.EVENT_READ, _drain)
    path = os.path.join(_run, "gunicorn.ready")
    with open(f"{path}.{worker.pid}", "w", encoding="utf-8") as f:
        f.write(f"{worker.pid} {worker.wsgi.revision}\n")
    os.replace(f"{path}.{worker.pid}", path)


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
