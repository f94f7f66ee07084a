"""Start or gracefully reload the shop's gunicorn on this host: the deploy's `restart` runs
this over ssh, as Debian's python3 (`-I -S`: the shop needs only the standard library).

    /usr/bin/python3 -I -S {deploy_path}/current/ctl.py graceful --bind ADDR:PORT [--statsd HOST:PORT]
    /usr/bin/python3 -I -S {deploy_path}/current/ctl.py status
    /usr/bin/python3 -I -S {deploy_path}/current/ctl.py stop

graceful  as `apachectl graceful`: if gunicorn does not run, start it (detached, in its own
          session) and wait until its worker serves. If it runs, first load the gunicorn.conf.py
          `current` points to in this process (one that does not load would stop the master on
          the SIGHUP). Then send gunicorn SIGHUP and wait until its new worker serves the new
          release; the old worker finishes the requests it has and exits (the repository's
          README says why SIGHUP). gunicorn stops altogether when a new worker cannot load the
          application, so the reload first loads it in a fork of the master (`on_reload` in
          gunicorn.conf.py): a release that does not load is refused, no worker starts, and
          the old one goes on serving.
stop      SIGTERM (gunicorn's graceful stop); wait until the master is gone.
status    one line: revision, address, master and worker; exit status 3 if it does not run.

Prints one line; exits non-zero with a one-line reason on failure. Files in
{deploy_path}/run/: gunicorn.pid and gunicorn.log (gunicorn's own), gunicorn.ready
("<worker pid> <revision>", written by each worker once it serves: gunicorn.conf.py),
gunicorn.refused (why a reload started no worker: gunicorn.conf.py), gunicorn.wake (a FIFO
gunicorn.conf.py writes a byte to after either, to wake a ctl.py that waits), ctl.lock (one
ctl command at a time).
"""

import fcntl
import os
import select
import sys
import time

# this file is {deploy_path}/releases/<id>/ctl.py
DEPLOY_PATH = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
GUNICORN = "/usr/bin/gunicorn"  # Debian's package `gunicorn`, on the system python3
POLL = 0.005  # seconds between looks at a stopping master
ALIVE_EVERY = 0.05  # seconds between looks at whether gunicorn still lives while ctl.py waits (`Wake`)
# POSIX's numbers (kill -1, kill -15): the `signal` module imports `enum`, 7 ms of CPU on
# every host on every deploy
SIGHUP, SIGTERM = 1, 15


class Failed(Exception):
    """A one-line reason to exit non-zero (the second argument: the exit status, default 1)."""


def run_path(name):
    return os.path.join(DEPLOY_PATH, "run", name)


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def cmdline(pid):
    """The argv of a live process, [] if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                return []
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode("utf-8", "replace").split("\0")[:-1]
    except (OSError, IndexError):
        return []


def option(argv, name):
    """The value of `name VALUE` in argv, or ''."""
    for i, arg in enumerate(argv[:-1]):
        if arg == name:
            return argv[i + 1]
    return ""


def last_log_line():
    lines = [ln.strip() for ln in read(run_path("gunicorn.log")).splitlines() if ln.strip()]
    return lines[-1] if lines else "gunicorn.log is empty"


class Gunicorn:
    """The gunicorn master serving this deploy path, found through its pid file."""

    def __init__(self):
        self.config = os.path.join(DEPLOY_PATH, "current", "gunicorn.conf.py")

    def argv(self, bind, statsd):
        return [GUNICORN, "--config", self.config, "--bind", bind, "--env", f"SHOP_STATSD={statsd}"]

    def master(self):
        """(pid, argv) of the running master, or (0, [])."""
        pid = read(run_path("gunicorn.pid"))
        argv = cmdline(int(pid)) if pid.isdigit() else []
        if "gunicorn" in " ".join(argv[:2]) and self.config in argv:
            return int(pid), argv
        return 0, []

    def ready(self):
        """(worker pid, revision) from gunicorn.ready, or (0, '')."""
        pid, _, revision = read(run_path("gunicorn.ready")).partition(" ")
        return (int(pid), revision) if pid.isdigit() else (0, "")

    def wait_ready(self, alive, timeout, what, old=0):
        """Wait until a worker other than `old` writes gunicorn.ready, or the reload's check
        writes gunicorn.refused: (worker pid, revision), or (0, why it refused); `alive()`
        says whether to go on waiting."""
        deadline = time.monotonic() + timeout
        with Wake() as wake:
            while time.monotonic() < deadline:
                worker, revision = self.ready()
                if worker and worker != old:
                    return worker, revision
                refused = read(run_path("gunicorn.refused"))
                if refused:
                    return 0, refused
                if not alive():
                    raise Failed(f"gunicorn exited {what}: {last_log_line()}")
                wake.wait(min(ALIVE_EVERY, deadline - time.monotonic()))
        raise Failed(f"gunicorn did not serve within {timeout:g} s {what}: {last_log_line()}")

    # -- commands ----------------------------------------------------------------------------
    def graceful(self, args):
        pid, argv = self.master()
        if not pid:
            return self.start(args)
        for name, want in (("--bind", args.bind), ("--env", f"SHOP_STATSD={args.statsd}")):
            if option(argv, name) != want:
                raise Failed(f"gunicorn (pid {pid}) runs with {name} {option(argv, name)!r}, not {want!r}; "
                             "run `ctl.py stop` first")
        old, serving = self.ready()
        refused = f"reload refused, still serving {serving or 'the old release'}: "
        check_config(refused)
        try:
            os.unlink(run_path("gunicorn.refused"))
        except FileNotFoundError:
            pass
        os.kill(pid, SIGHUP)
        worker, revision = self.wait_ready(lambda: bool(cmdline(pid)), args.timeout, "during the reload", old)
        if not worker:
            raise Failed(refused + revision)
        return f"reloaded: revision {revision} on {args.bind} (master {pid}, worker {worker})"

    def start(self, args):
        import subprocess  # only here: ctl.py runs on every host on every deploy, and a reload needs none

        if not os.access(GUNICORN, os.X_OK):
            raise Failed(f"{GUNICORN} is missing: install Debian's package gunicorn")
        if not os.path.isfile(self.config):
            raise Failed(f"{self.config}: no such file; expected `current` to point at a release of the shop")
        for stale in ("gunicorn.ready", "gunicorn.pid"):  # gunicorn refuses to start over a pid that lives on
            try:
                os.unlink(run_path(stale))
            except FileNotFoundError:
                pass
        with open(run_path("gunicorn.log"), "ab") as log:
            proc = subprocess.Popen(
                self.argv(args.bind, args.statsd), cwd=DEPLOY_PATH, env={"PATH": "/usr/bin:/bin"},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        worker, revision = self.wait_ready(lambda: proc.poll() is None, args.timeout, "while starting")
        return f"started: revision {revision} on {args.bind} (master {proc.pid}, worker {worker})"

    def stop(self, args):
        pid, _ = self.master()
        if not pid:
            return "not running"
        os.kill(pid, SIGTERM)
        deadline = time.monotonic() + args.timeout
        while cmdline(pid):
            if time.monotonic() > deadline:
                raise Failed(f"gunicorn (pid {pid}) did not stop within {args.timeout:g} s")
            time.sleep(POLL)
        return f"stopped (master {pid})"

    def status(self, args):
        pid, argv = self.master()
        if not pid:
            raise Failed("not running", 3)
        worker, revision = self.ready()
        return f"running: revision {revision or '?'} on {option(argv, '--bind')} (master {pid}, worker {worker})"


class Wake:
    """run/gunicorn.wake, the FIFO gunicorn.conf.py writes a byte to once it has written
    gunicorn.ready or gunicorn.refused. Waiting on it costs nothing; looking at the files every
    5 ms instead cost ~15 ms of CPU per reload, on every host on every deploy. Opened before
    the first look at the files, so a byte written after a look always wakes the wait."""

    def __enter__(self):
        path = run_path("gunicorn.wake")
        try:
            os.mkfifo(path, 0o600)
        except FileExistsError:
            pass
        # read and write: with a writer of its own the FIFO never reads as ended (which would
        # wake every wait at once) once a worker has written and closed it
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        return self

    def wait(self, seconds):
        """Until a byte arrives or `seconds` pass."""
        if select.select([self.fd], [], [], max(0.0, seconds))[0]:
            try:
                os.read(self.fd, 4096)
            except BlockingIOError:
                pass

    def __exit__(self, *exc):
        os.close(self.fd)


def check_config(refused):
    """Load the gunicorn.conf.py of the release `current` points to, as the master will on
    the SIGHUP: one that does not load would make the master exit (and the host serve
    nothing). Failed (`refused` and what failed) if it does not. The application itself is
    loaded by the reload, in a fork of the master, before any new worker starts
    (`on_reload` in gunicorn.conf.py)."""
    release = os.path.realpath(os.path.join(DEPLOY_PATH, "current"))
    config = os.path.join(release, "gunicorn.conf.py")
    try:
        with open(config, encoding="utf-8") as f:
            exec(compile(f.read(), config, "exec"), {"__file__": config, "__name__": "__config__"})
    except Exception as exc:  # noqa: BLE001 - whatever fails, the reload is refused
        raise Failed(f"{refused}{config} does not load: {type(exc).__name__}: {exc}") from None


COMMANDS = ("graceful", "stop", "status")
#: option -> (default, help)
OPTIONS = {
    "bind": ("127.0.0.1:8080", "ADDRESS:PORT to listen on"),
    "statsd": ("", "HOST:PORT to send StatsD metrics to; empty: none"),
    "timeout": ("30", "seconds to wait for gunicorn"),
}
USAGE = "usage: ctl.py {graceful,stop,status} [--bind ADDRESS:PORT] [--statsd HOST:PORT] [--timeout SECONDS]"


class Args:
    """`COMMAND [--name VALUE | --name=VALUE]...`, parsed by hand: ctl.py runs on every host on
    every deploy, and argparse would be its largest import after the release check's."""

    def __init__(self, argv):
        if argv[:1] in (["-h"], ["--help"]):
            raise Failed("\n".join([USAGE, *(f"  --{n:<8} {h} (default {d!r})" for n, (d, h) in OPTIONS.items())]), 0)
        if not argv or argv[0] not in COMMANDS:
            raise Failed(f"{USAGE}\nctl.py: expected a command first: {', '.join(COMMANDS)}", 2)
        self.command = argv[0]
        values = {name: default for name, (default, _) in OPTIONS.items()}
        rest = list(argv[1:])
        while rest:
            arg = rest.pop(0)
            name, eq, value = arg.partition("=")
            if not name.startswith("--") or name[2:] not in OPTIONS:
                raise Failed(f"{USAGE}\nctl.py: unknown argument {arg!r}", 2)
            if not eq:
                if not rest:
                    raise Failed(f"{USAGE}\nctl.py: {name} needs a value", 2)
                value = rest.pop(0)
            values[name[2:]] = value
        self.bind, self.statsd = values["bind"], values["statsd"]
        try:
            self.timeout = float(values["timeout"])
        except ValueError:
            raise Failed(f"{USAGE}\nctl.py: --timeout: expected seconds, got {values['timeout']!r}", 2) from None


def main(argv=None):
    try:
        args = Args(sys.argv[1:] if argv is None else argv)
    except Failed as exc:
        print(exc.args[0], file=sys.stdout if exc.args[1] == 0 else sys.stderr)
        return exc.args[1]
    try:
        os.makedirs(run_path(""), exist_ok=True)
        with open(run_path("ctl.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one ctl command at a time on this host
            print(getattr(Gunicorn(), args.command)(args), flush=True)
    except Failed as exc:
        print(f"shop {args.command}: {exc.args[0]}", file=sys.stderr, flush=True)
        return exc.args[1] if len(exc.args) > 1 else 1
    except OSError as exc:
        print(f"shop {args.command}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
