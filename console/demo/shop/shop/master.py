"""The master: owns the listening socket and keeps one worker serving `{deploy_path}/current`.

Run by `ctl.py start|graceful` (detached) or `ctl.py run` (in the foreground).

- The socket is bound once (SO_REUSEADDR) and stays open for the master's whole life, so
  no connection is ever refused: connections wait in its backlog for whichever worker accepts.
- SIGHUP: fork a new worker that loads the release `current` points to now, wait until
  it is ready, then SIGTERM the old one, which stops accepting and finishes its requests in
  flight. If the new worker fails to start, the old one keeps serving and the failure is
  recorded in the state file.
- SIGTERM/SIGINT: stop every worker gracefully, then exit.
- A worker that dies on its own is replaced.
- Workers are forked from the master (as gunicorn and Apache's prefork do) and import
  the release's code after the fork, so a reload costs the release's own imports, not a
  new interpreter. The child forgets every `shop` module the master imported
  (runfiles.py; master.py too under `ctl.py run`) and imports the new release's.
- Signals wake the master's loop at once (a wakeup pipe; SIGCHLD too, so a worker that
  dies is replaced at once): a reload starts the moment SIGHUP arrives, and an idle
  master does not poll.

Files under {deploy_path}/run/: shop.pid (the master's pid), shop.state (pid, port,
generation, worker pid, release, revision, failures, last error), config (the StatsD
address, rewritten by ctl before each reload), shop.log (the log of master and workers);
see runfiles.py for their format.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if sys.path and os.path.realpath(sys.path[0]) == os.path.join(ROOT, "shop"):
    sys.path.pop(0)
sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import runpy  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

# The standard library's server machinery every worker runs on, imported once here so
# that forked workers inherit it and a reload only imports the release's own code.
import http.server  # noqa: E402, F401
import socketserver  # noqa: E402, F401
import threading  # noqa: E402, F401

from shop.runfiles import read_fields, write_fields  # noqa: E402

FORK = multiprocessing.get_context("fork")
SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)

READY_TIMEOUT = 30.0
DRAIN_TIMEOUT = 60.0
STOP_ACCEPT_TIMEOUT = 10.0


def log(message):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} master {os.getpid()}: {message}", file=sys.stderr, flush=True)


def read_line(fd, timeout):
    """Read from a worker's pipe up to a newline, EOF or `timeout` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    return data


def run_worker(script, argv):
    """In the forked child: forget the master's release and signal handling, then run
    the new release's worker.py as if it had been started as a script."""
    signal.set_wakeup_fd(-1)
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    sys.path[:] = [p for p in sys.path if p != ROOT]
    for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
        del sys.modules[name]
    sys.argv = [script, *argv]
    os.chdir(os.path.dirname(os.path.dirname(script)))
    runpy.run_path(script, run_name="__main__")


class Master:
    def __init__(self, deploy_path, bind, port, statsd, ready_timeout=READY_TIMEOUT):
        self.deploy_path = os.path.abspath(deploy_path)
        self.run_dir = os.path.join(self.deploy_path, "run")
        self.bind, self.port, self.statsd = bind, port, statsd
        self.ready_timeout = ready_timeout
        self.sock = None
        self.worker = None  # (Process, release, revision, read end of its pipe)
        self.draining = []  # (Process, deadline)
        self.generation = 0
        self.failures = 0
        self.last_error = ""
        self.hup = False
        self.stop = False
        self.wakeup = None  # read end of the pipe signals write to

    # -- files -------------------------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.run_dir, name)

    def save_state(self):
        proc, release, revision, _ = self.worker if self.worker else (None, "", "", -1)
        write_fields(self.path("shop.state"), {
            "master_pid": os.getpid(),
            "bind": self.bind,
            "port": self.port,
            "statsd": self.statsd,
            "generation": self.generation,
            "worker_pid": proc.pid if proc else 0,
            "release": release,
            "revision": revision,
            "failures": self.failures,
            "last_error": self.last_error,
            "updated": time.time(),
        })

    def read_config(self):
        self.statsd = read_fields(self.path("config")).get("statsd", self.statsd)

    # -- workers -----------------------------------------------------------------------------
    def spawn(self):
        """Start a worker from the release `current` points to; returns it when ready, or
        records why not and returns None."""
        current = os.path.join(self.deploy_path, "current")
        release = os.path.realpath(current)
        script = os.path.join(release, "shop", "worker.py")
        if not os.path.isfile(script):
            return self.fail(f"{current} -> {release}: no shop/worker.py there")
        r, w = os.pipe()
        argv = ["--fd", str(self.sock.fileno()), "--ready-fd", str(w), "--deploy-path", self.deploy_path,
                "--statsd", self.statsd, "--master-pid", str(os.getpid())]
        proc = FORK.Process(target=run_worker, args=(script, argv), daemon=False)
        try:
            proc.start()
        except OSError as exc:
            os.close(r)
            os.close(w)
            return self.fail(f"cannot start a worker from {release}: {exc}")
        os.close(w)
        answer = read_line(r, self.ready_timeout)
        if not answer.startswith(b"ready "):
            os.close(r)
            if proc.is_alive():
                proc.kill()
            proc.join()
            why = "timed out" if proc.exitcode < 0 else f"exited with status {proc.exitcode}"
            return self.fail(f"worker from {release} was not ready ({why}); see run/shop.log")
        revision = answer.split()[1].decode()
        self.generation += 1
        log(f"worker {proc.pid} ready: revision {revision} from {release} (generation {self.generation})")
        return proc, release, revision, r

    def fail(self, message):
        self.failures += 1
        self.last_error = message
        log(message)
        self.save_state()
        return None

    def reload(self):
        self.read_config()
        new = self.spawn()
        if new is None:
            return False
        old, self.worker = self.worker, new
        if old is not None:
            # The reload is done when the old worker no longer accepts: from then on every
            # new connection is served by the new release.
            old[0].terminate()
            read_line(old[3], STOP_ACCEPT_TIMEOUT)
            os.close(old[3])
            self.draining.append((old[0], time.monotonic() + DRAIN_TIMEOUT))
        self.save_state()
        return True

    def reap(self):
        still = []
        for proc, deadline in self.draining:
            if not proc.is_alive():
                log(f"worker {proc.pid} finished its requests and exited")
            elif time.monotonic() > deadline:
                log(f"worker {proc.pid} still busy after {DRAIN_TIMEOUT:.0f} s, killing it")
                proc.kill()
                proc.join()
            else:
                still.append((proc, deadline))
        self.draining = still

    # -- life --------------------------------------------------------------------------------
    def on_signal(self, signum, frame):
        if signum == signal.SIGHUP:
            self.hup = True
        elif signum != signal.SIGCHLD:  # a child's exit only needs to wake the loop
            self.stop = True

    def run(self):
        os.makedirs(self.run_dir, exist_ok=True)
        self.wakeup, wake = os.pipe()
        os.set_blocking(wake, False)
        signal.set_wakeup_fd(wake)
        for sig in SIGNALS:
            signal.signal(sig, self.on_signal)
        try:
            family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((self.bind, self.port))
            self.sock.listen(1024)
            self.sock.setblocking(False)
        except OSError as exc:
            log(f"cannot listen on {self.bind}:{self.port}: {exc.strerror or exc}")
            return 2
        with open(self.path("shop.pid.tmp"), "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(self.path("shop.pid.tmp"), self.path("shop.pid"))
        log(f"listening on {self.bind}:{self.port}")
        # Whatever ends the loop, the workers go first: they are forked children, and an
        # interpreter exiting past them would wait for them forever.
        try:
            return self.serve()
        finally:
            self.shutdown()

    def serve(self):
        if not self.reload():
            return 1
        backoff = 0.0
        while not self.stop:
            if self.hup:
                self.hup = False
                self.reload()
            proc = self.worker[0] if self.worker else None
            if proc is not None and not proc.is_alive():
                log(f"worker {proc.pid} died with status {proc.exitcode}; starting another")
                os.close(self.worker[3])
                self.worker = None
            if self.worker is None and time.monotonic() >= backoff:
                if not self.reload():
                    backoff = time.monotonic() + 2.0
            self.reap()
            if select.select([self.wakeup], [], [], 1.0)[0]:
                os.read(self.wakeup, 512)
        return 0

    def shutdown(self):
        procs = [p for p, _ in self.draining] + ([self.worker[0]] if self.worker else [])
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.worker, self.draining = None, []
        for name in ("shop.pid", "shop.state"):
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass
        if self.sock is not None:
            self.sock.close()
        log("stopped")


def main(argv=None):
    p = argparse.ArgumentParser(prog="shop-master")
    p.add_argument("--deploy-path", required=True)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--statsd", default="")
    p.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT)
    args = p.parse_args(argv)
    master = Master(args.deploy_path, args.bind, args.port, args.statsd, args.ready_timeout)
    return master.run()


if __name__ == "__main__":
    sys.exit(main())
