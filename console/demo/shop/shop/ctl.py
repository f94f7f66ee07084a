"""Control the shop on one host: the deploy engine's `restart` runs this over ssh.

    python3 {deploy_path}/current/shop/ctl.py graceful --deploy-path D --bind ADDR --port P --statsd HOST:PORT
    python3 {deploy_path}/current/shop/ctl.py status   --deploy-path D
    python3 {deploy_path}/current/shop/ctl.py stop     --deploy-path D

graceful: if the master runs, make it load the release `current` points to now (SIGHUP)
          and wait until the new worker serves; otherwise start the master detached
          (setsid, output to {deploy_path}/run/shop.log) and wait until it serves.
start:    start the master detached; fails if it already runs.
stop:     stop the master and its workers gracefully, wait until they are gone.
status:   one line: pid, port, revision; exit status 3 if it does not run.
run:      run the master in the foreground (for debugging).

Prints one line; exits non-zero with a one-line reason on failure.

The deploy runs `graceful` on every host on every deploy, so ctl imports only modules
that start in no time: no argparse or json (they pull in `re`, which tripled ctl's
start-up from 11 to 34 ms of CPU), and subprocess only to start the master.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if sys.path and os.path.realpath(sys.path[0]) == os.path.join(ROOT, "shop"):
    sys.path.pop(0)
sys.path.insert(0, ROOT)

import fcntl  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from shop.runfiles import read_fields, write_fields  # noqa: E402

WAIT = 40.0
POLL = 0.01  # seconds between looks at the master's state file


class Failed(Exception):
    """A one-line reason to exit non-zero."""


def alive(pid):
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            state = f.read().rpartition(")")[2].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    return state not in ("Z", "X") and b"shop" in cmdline and (b"master.py" in cmdline or b"ctl.py" in cmdline)


class Ctl:
    def __init__(self, args):
        self.args = args
        self.deploy_path = os.path.abspath(args.deploy_path)
        self.run_dir = os.path.join(self.deploy_path, "run")

    def path(self, name):
        return os.path.join(self.run_dir, name)

    def master_pid(self):
        try:
            with open(self.path("shop.pid"), encoding="utf-8") as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0
        return pid if alive(pid) else 0

    def state(self):
        """The master's state file, with its numbers as numbers."""
        state = read_fields(self.path("shop.state"))
        for key in ("master_pid", "worker_pid", "port", "generation", "failures"):
            if key in state:
                state[key] = int(state[key]) if state[key].isdigit() else 0
        return state

    def last_log_line(self):
        try:
            with open(self.path("shop.log"), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1].strip() if lines else "empty log"

    def write_config(self):
        write_fields(self.path("config"), {"statsd": self.args.statsd})

    def serving(self, state):
        return (f"revision {state.get('revision', '?')} on {state.get('bind')}:{state.get('port')} "
                f"(master {state.get('master_pid')}, worker {state.get('worker_pid')})")

    # -- commands ----------------------------------------------------------------------------
    def start(self):
        import subprocess

        if self.master_pid():
            raise Failed(f"the shop master already runs (pid {self.master_pid()}); use graceful or stop")
        current = os.path.join(self.deploy_path, "current")
        release = os.path.realpath(current)
        if not os.path.isdir(release):
            raise Failed(f"{current}: no release there; expected a symlink to releases/<id>")
        master = os.path.join(release, "shop", "master.py")
        self.write_config()
        with open(self.path("shop.log"), "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-B", master, "--deploy-path", self.deploy_path, "--bind", self.args.bind,
                 "--port", str(self.args.port), "--statsd", self.args.statsd],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=self.run_dir, start_new_session=True, close_fds=True,
            )
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state.get("master_pid") == proc.pid and state.get("generation", 0) >= 1:
                return f"started: {self.serving(state)}"
            if proc.poll() is not None:
                raise Failed(f"the shop master exited with status {proc.returncode}: {self.last_log_line()}")
            time.sleep(POLL)
        raise Failed(f"the shop master did not serve within {self.args.timeout:.0f} s: {self.last_log_line()}")

    def graceful(self):
        pid = self.master_pid()
        if not pid:
            return self.start()
        before = self.state()
        if before and (before.get("port") != self.args.port or before.get("bind") != self.args.bind):
            raise Failed(f"the shop master (pid {pid}) listens on {before.get('bind')}:{before.get('port')}, "
                         f"not {self.args.bind}:{self.args.port}; run stop first")
        generation, failures = before.get("generation", 0), before.get("failures", 0)
        self.write_config()
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state.get("generation", 0) > generation:
                return f"reloaded: {self.serving(state)}"
            if state.get("failures", 0) > failures:
                raise Failed(f"reload failed, still serving {before.get('revision')}: {state.get('last_error')}")
            if not alive(pid):
                raise Failed(f"the shop master (pid {pid}) exited during the reload: {self.last_log_line()}")
            time.sleep(POLL)
        raise Failed(f"the shop master (pid {pid}) did not reload within {self.args.timeout:.0f} s")

    def stop(self):
        pid = self.master_pid()
        if not pid:
            return "not running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                return f"stopped (master {pid})"
            time.sleep(POLL)
        raise Failed(f"the shop master (pid {pid}) did not stop within {self.args.timeout:.0f} s")

    def status(self):
        pid = self.master_pid()
        if not pid:
            raise Failed("not running", 3)
        return f"running: {self.serving(self.state())}"


COMMANDS = ("graceful", "start", "stop", "status", "run")
#: option -> (type, default, help)
OPTIONS = {
    "deploy-path": (str, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "the host's deploy path (three levels above this file)"),
    "bind": (str, "0.0.0.0", "address to listen on"),
    "port": (int, 8080, "http port"),
    "statsd": (str, "", "HOST:PORT to send StatsD metrics to; empty: none"),
    "timeout": (float, WAIT, "seconds to wait for the master"),
}
USAGE = "usage: ctl.py {" + ",".join(COMMANDS) + "} " + " ".join(f"[--{name} VALUE]" for name in OPTIONS)


class Args:
    """`COMMAND [--name VALUE | --name=VALUE]...`, parsed by hand: see the module docstring."""

    def __init__(self, argv):
        if argv and argv[0] in ("-h", "--help"):
            raise Failed(USAGE + "\n" + "\n".join(f"  --{n:<12} {h} (default {d!r})" for n, (_, d, h) in OPTIONS.items()), 0)
        if not argv or argv[0] not in COMMANDS:
            raise Failed(f"{USAGE}\nctl.py: a command first, one of {', '.join(COMMANDS)}", 2)
        self.command = argv[0]
        values = {name: default for name, (_, default, _) in OPTIONS.items()}
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
            kind = OPTIONS[name[2:]][0]
            try:
                values[name[2:]] = kind(value)
            except ValueError:
                raise Failed(f"{USAGE}\nctl.py: {name}: not a number: {value!r}", 2) from None
        self.deploy_path, self.bind, self.port = values["deploy-path"], values["bind"], values["port"]
        self.statsd, self.timeout = values["statsd"], values["timeout"]


def main(argv=None):
    try:
        args = Args(sys.argv[1:] if argv is None else argv)
    except Failed as exc:
        print(exc.args[0], file=sys.stdout if exc.args[1] == 0 else sys.stderr)
        return exc.args[1]
    ctl = Ctl(args)
    if args.command == "run":
        from shop.master import Master

        return Master(ctl.deploy_path, args.bind, args.port, args.statsd).run()
    try:
        os.makedirs(ctl.run_dir, exist_ok=True)
        with open(ctl.path("ctl.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one ctl command at a time on this host
            print(getattr(ctl, args.command)(), flush=True)
    except Failed as exc:
        print(f"shop {args.command}: {exc.args[0]}", file=sys.stderr, flush=True)
        return exc.args[1] if len(exc.args) > 1 else 1
    except OSError as exc:
        print(f"shop {args.command}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
