"""How the deploy host talks to one web host: one Fabric connection, for commands and rsync.

`HostLink` is the `Connection` (console/fleet/connection.py) the pipeline uses by
default: one `fabric.Connection` per host lives for a whole run, every phase of it. Its
first use connects; every command after that is a session on the open connection, and
every rsync too (console/fleet/relay.py: rsync's remote shell hands its pipes to this
process, which runs rsync's server on a channel), so a host costs one SSH handshake per
run and no `ssh` process at all. The connection dies with the run (`close`): a `switch`
right after a deploy pays its handshakes again (the README's "Measured" section).

- Host keys: the inventory's known_hosts and nothing else (console/fleet/hostkeys.py):
  an unknown, changed or revoked key refuses that host in one line. Fabric's default
  policy (accept anything) and ssh_config files are never used.
- Commands run through `fabric.Connection.run` with a runner tuned for latency
  (console/fleet/runner.py): no stdin pump, no sleep-polling, a deadline on every wait.
- The socket is our own, with TCP_NODELAY (Paramiko leaves Nagle on: a 40 ms stall at
  the end of each rsync), and the keepalive is ours (console/fleet/keepalive.py): a
  frozen host or a cut link fails within `timeouts.connect`, a slow link keeps going
  while bytes move.
- Everything runs in this process's threads or in rsync's own session, so a Ctrl-C for
  the deploy (which stops it at the next safe point) never kills a host's step half-way;
  closing the run's connections ends every step in flight at once.

Every failure comes back as a `HostError` with the one line the report shows, so a
host's failure is data for the report, never a crash of the deploy.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import fabric
import paramiko
from invoke.exceptions import CommandTimedOut

from console.config.inventory import Host, Inventory
from console.fleet.connection import HostError, Result, bytes_sent, command_failed, rsync_failed, tail
from console.fleet.hostkeys import Refused, known_hosts, lookup_name
from console.fleet.keepalive import WATCHDOG, Liveness
from console.fleet.relay import Relay, rsync_argv
from console.fleet.runner import Command, PastDeadline, talk

# Paramiko logs its transport thread's errors (a peer that vanished) with tracebacks; the
# failure reaches the report as a HostError instead, so its log is not printed.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


class _Config(fabric.Config):
    """Fabric's configuration, with the two attributes invoke looks for on every read of a
    section (`config.run`) and only its sections have: the root answers a missing attribute
    by building an error message of every key and attribute it has, 36 µs, 6 times per
    command. Read as invoke reads them, they mean the same: the root's own key path is empty
    and its root is itself."""

    _keypath = ()

    @property
    def _root(self) -> _Config:
        return self


#: The Fabric configuration every connection starts from: no config files, no ssh_config (it
#: could redirect a host), the tuned runner, quiet commands whose failures are data. Each
#: connection gets its own clone: `fabric.Connection()` writes to its config (`inline_ssh_env`
#: is not a real attribute, so setting it re-merges the whole config), and a shared one, read
#: by other hosts' threads mid-merge, failed them with "No attribute or config key found".
CONFIG = _Config(
    lazy=True,
    overrides={
        "load_ssh_configs": False,
        "runners": {"remote": Command},
        "run": {"hide": True, "warn": True, "in_stream": False, "encoding": "utf-8"},
    },
)


#: SSH handshakes in flight at once, across the process's runs (the TCP connects are not
#: held back: a host that does not answer them waits out its limit beside the others). A
#: handshake is a few KiB each way in a few round trips; 200 at once through a slow push
#: link (the lab's at 1 Mbit/s) burst some 300 KiB into its queue, lose packets and wait
#: out TCP's backoff past `timeouts.connect`, and on the push host they share its one
#: interpreter. 500 lab hosts connect as fast with 32 at once as with no bound.
DIALS = threading.BoundedSemaphore(32)


def _aead_first(sock: socket.socket, **kwargs: Any) -> paramiko.Transport:
    """Paramiko's transport, offering AES-GCM before its default AES-CTR with HMAC (as
    OpenSSH orders them): one call per packet seals and checks it, where CTR adds an HMAC
    and a MAC comparison in Python. A host without GCM still gets CTR. ~0.1 ms of CPU per
    command, 0.3 ms per handshake (A/B on one lab host)."""
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    aead = tuple(c for c in options.ciphers if c.endswith("-gcm@openssh.com"))
    options.ciphers = aead + tuple(c for c in options.ciphers if c not in aead)
    return transport


@functools.lru_cache(maxsize=8)
def _private_key(path: Path, mtime_ns: int) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise HostError(f"{path}: cannot read the private key: {exc}") from None


class HostLink:
    """The run's one Fabric connection to a host, opened on first use and reused
    (a `console.fleet.connection.Connection`)."""

    def __init__(self, inventory: Inventory, host: Host) -> None:
        self.inventory = inventory
        self.host = host
        self.where = f"{host.address}:{host.port}"
        self._ssh: fabric.Connection | None = None
        self._sock: socket.socket | None = None
        self._lost = ""  # why the open connection died under us (the keepalive's verdict)
        self._lock = threading.Lock()

    # -- the connection -------------------------------------------------------------

    def open(self) -> fabric.Connection:
        """The open connection, connecting (again, if the last one died) within `timeouts.connect`."""
        with self._lock:
            if self._ssh is not None and self._ssh.is_connected:
                return self._ssh
            self._release()
            self._ssh = self._dial()
            return self._ssh

    def _dial(self) -> fabric.Connection:
        inv, host, limit = self.inventory, self.host, self.inventory.timeouts.connect
        known = known_hosts(inv.ssh.known_hosts)
        try:
            key = _private_key(inv.ssh.key, os.stat(inv.ssh.key).st_mtime_ns)
        except OSError as exc:
            raise HostError(f"{inv.ssh.key}: cannot read the private key: {exc.strerror}") from None
        try:
            sock = socket.create_connection((host.address, host.port), timeout=limit)
        except TimeoutError:
            raise HostError(f"ssh connect to {self.where} timed out after {limit:g} s") from None
        except OSError as exc:
            raise HostError(
                f"ssh to {self.where} failed: connect to host {host.address} port {host.port}: {exc.strerror or exc}"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ssh = fabric.Connection(
            host.address,
            user=inv.ssh.user,
            port=host.port,
            config=CONFIG.clone(),
            connect_kwargs={
                "sock": sock,
                "transport_factory": _aead_first,
                "pkey": key,
                "look_for_keys": False,
                "allow_agent": False,
                "timeout": limit,
                "banner_timeout": limit,
                "auth_timeout": limit,
                "channel_timeout": limit,
            },
        )
        known.install(ssh.client, lookup_name(host.address, host.port))
        with DIALS:  # its time limits start once its turn comes
            started = time.monotonic()
            try:
                ssh.open()
            except BaseException as exc:
                ssh.close()
                sock.close()
                if isinstance(exc, Exception):
                    raise HostError(self._refusal(exc, time.monotonic() - started)) from None
                raise
        # Paramiko's thread wakes at each socket timeout (0.1 s) to look at its keepalive and
        # whether it was closed: 500 open connections cost ~5,000 wake-ups a second. The
        # keepalive's probe (every third of its limit) needs no finer step than a sixth.
        sock.settimeout(min(1.0, limit / 6))
        self._sock, self._lost = sock, ""
        WATCHDOG.watch(id(self), Liveness(sock, ssh.transport, limit, self._frozen))
        return ssh

    def _refusal(self, exc: Exception, elapsed: float) -> str:
        """The one line for a connection that could not be made (ssh's own words where they exist)."""
        known, where, limit = self.inventory.ssh.known_hosts, self.where, self.inventory.timeouts.connect
        if isinstance(exc, paramiko.BadHostKeyException):
            if exc.key.asbytes() in known_hosts(known).revoked:
                return f"host key of {where} is revoked in {known}: refused (revoked host key)"
            return f"host key of {where} does not match {known}: refused (changed host key)"
        if isinstance(exc, Refused):
            if exc.why == "revoked host key":
                return f"host key of {where} is revoked in {known}: refused (revoked host key)"
            return f"host key of {where} is not in {known}: refused (unknown host)"
        if isinstance(exc, HostError):
            return exc.reason
        if isinstance(exc, paramiko.AuthenticationException):
            return f"ssh to {where} failed: Permission denied ({exc})"
        if isinstance(exc, TimeoutError) or elapsed >= limit or "banner" in str(exc):
            return f"ssh connect to {where} timed out after {limit:g} s"
        return f"ssh to {where} failed: {exc or type(exc).__name__}"

    def _frozen(self) -> None:
        """The keepalive's verdict (its thread): shut the socket down, which ends every
        wait on this connection at once; the failures name the reason."""
        self._lost = f"no answer for {self.inventory.timeouts.connect:g} s (frozen host or cut link)"
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _lost_reason(self, exc: BaseException | None = None) -> str:
        """Why the connection is gone, as ssh would say it."""
        ssh = self._ssh
        if self._lost:
            why = self._lost
        elif ssh is not None and ssh.transport is not None and not ssh.transport.is_active():
            why = "connection closed by the host"
        else:
            why = str(exc) if exc else "connection lost"
        return f"ssh to {self.where} failed: {why}"

    def _alive(self) -> bool:
        ssh = self._ssh
        return ssh is not None and ssh.is_connected and not self._lost

    def _release(self) -> None:
        """Forget a connection (dead or done): close it, stop watching it."""
        WATCHDOG.forget(id(self))
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # Paramiko's thread wakes and ends now
            except OSError:
                pass
        if self._ssh is not None:
            self._ssh.close()
        if self._sock is not None:
            self._sock.close()
        self._ssh = self._sock = None

    # -- the Connection protocol ------------------------------------------------------

    def run(
        self, command: str, *, timeout: float | None = None, what: str = "", stdin: str | bytes | None = None
    ) -> Result:
        """Run a shell command on the host, `stdin` fed to it (never argv: see the module
        docstring of console.fleet.connection); a non-zero exit or a timeout is a HostError."""
        limit = timeout or self.inventory.timeouts.command
        fed = io.StringIO(stdin) if isinstance(stdin, str) else io.BytesIO(stdin) if stdin is not None else False

        def execute(ssh: fabric.Connection) -> tuple[str, str, int]:
            r = ssh.run(command, timeout=limit, in_stream=fed)
            return r.stdout, r.stderr, r.exited

        return self._command(what or command.split(" ", 1)[0], limit, execute)

    def stream(
        self,
        command: str,
        *,
        timeout: float | None = None,
        what: str = "",
        feed: Iterable[bytes] = (),
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        """Run a long command on a channel of this connection, feeding its stdin and
        handing on its lines as they come (runner.talk); failures as `run`'s."""
        limit = timeout or self.inventory.timeouts.command

        def execute(ssh: fabric.Connection) -> tuple[str, str, int]:
            return talk(ssh.transport, command, time.monotonic() + limit, feed, on_line or _ignore_line)

        return self._command(what or command.split(" ", 1)[0], limit, execute)

    def _command(
        self, label: str, limit: float, execute: Callable[[fabric.Connection], tuple[str, str, int]]
    ) -> Result:
        """`execute` on the open connection (stdout, stderr, exit status), its failures as
        one HostError: not reached, lost, timed out or a non-zero exit."""
        try:
            ssh = self.open()
        except HostError as exc:
            raise HostError(f"{label}: {exc.reason}", reached=False) from None
        try:
            out, err, code = execute(ssh)
        except (CommandTimedOut, PastDeadline):
            if not self._alive():
                raise HostError(f"{label}: {self._lost_reason()}") from None
            raise HostError(f"{label} timed out after {limit:g} s", timed_out=True) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise HostError(f"{label}: {self._lost_reason(exc)}") from None
        if code == -1 and not self._alive():
            raise HostError(f"{label}: {self._lost_reason()}", exit_code=-1, output=tail(err or out))
        if code != 0:
            raise command_failed(label, code, out, err)
        return Result(out, err, code)

    def rsync(self, source: Path, dest: str, options: Sequence[str] = (), *, timeout: float | None = None) -> int:
        """rsync a local directory's contents to a path on the host over this connection;
        returns the bytes sent."""
        limit = timeout or self.inventory.timeouts.sync
        deadline = time.monotonic() + limit
        try:
            ssh = self.open()
        except HostError as exc:
            raise HostError(f"rsync: {exc.reason}", reached=False) from None
        argv = rsync_argv(source, self.host.address, dest, options, limit)
        try:
            p = Relay(ssh.transport, self.host.address, deadline).run(argv)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise HostError(f"rsync: {self._lost_reason(exc)}") from None
        if p.timed_out:
            raise HostError(f"rsync to {dest} timed out after {limit:g} s", exit_code=p.exit_code)
        if p.exit_code != 0:
            raise rsync_failed(p.exit_code, p.stdout, p.stderr, None if self._alive() else self._lost_reason())
        return bytes_sent(p.stdout)

    def close(self) -> None:
        """The end of the run: the connection goes (it dies with its process anyway)."""
        with self._lock:
            self._release()


def _ignore_line(line: str) -> None:
    """The listener of a stream nobody reads line by line."""
