"""rsync over the host's open SSH connection: no second connection, no Python per rsync.

rsync runs here as always; only its remote shell (`-e`) changes. Instead of `ssh`, it
starts `sh`, which writes rsync's remote command line to fd 3 and execs `socat` to join
rsync's pipes to fd 3: one end of a socket pair whose other end this process holds.
This process reads the command line, opens a channel on the host's open Paramiko
connection, execs that command there (rsync's server) and pumps bytes both ways:

    rsync --(pipes)-- sh/socat --(socket pair)-- this process --(SSH channel)-- rsync --server

Why this shape (the traps it avoids):
- sh and socat are C programs from Debian (~1 ms to start); a Python helper per rsync
  would cost 10-20 ms and ~18 ms of CPU each;
- socat runs with `-t0`: rsync waits for its remote shell to exit before it exits, and a
  relay that lingers after the host's side ended (socat's default 0.5 s) costs each
  rsync that much;
- rsync is started with `posix_spawn` and the socket dup'ed to fd 3 (dash redirects only
  single-digit fds), in a session of its own so a Ctrl-C for the deploy never reaches it;
- the channel is fed in pieces of at most 64 KiB (`Channel.sendall` of one large buffer
  is quadratic), and read in the calling thread while a second thread feeds it.

rsync's stdout and stderr go to memory files (they never fill and block it); the host's
stderr (rsync's server's, the shell's) is put before rsync's own, as ssh would print it.
The exit code is rsync's. Past the deadline, rsync's session is killed and the channel
closed.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from console.fleet.runner import exec_within

#: rsync's remote shell: the command line (count, then each argument, NUL-terminated) to
#: fd 3, then socat between rsync's pipes and fd 3. rsync splits this string at spaces,
#: honouring the single quotes; the backslash goes to printf as it is.
RSH = """sh -c 'printf "%s\\0" "$#" "$@" >&3 && exec socat -t0 -b65536 - FD:3' rsync-relay"""
PIECE = 65536


@dataclass
class Transfer:
    """What one rsync left: its exit code and output (the host's stderr first)."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


class Relay:
    """One rsync to one host over an open transport (see the module docstring)."""

    def __init__(self, transport: paramiko.Transport, host_token: str, deadline: float) -> None:
        self.transport = transport
        self.host_token = host_token  # the host part rsync was given; it comes back as argv[1]
        self.deadline = deadline
        self._remote_err: list[bytes] = []

    def _left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def run(self, argv: Sequence[str]) -> Transfer:
        ours, theirs = socket.socketpair()
        out, err = os.memfd_create("rsync-stdout"), os.memfd_create("rsync-stderr")
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            pid = os.posix_spawn(
                _rsync(),
                list(argv),
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, out, 1),
                    (os.POSIX_SPAWN_DUP2, err, 2),
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3),
                ],
                setsid=True,
            )
        finally:
            os.close(null)
            theirs.close()
        timed_out = False
        try:
            try:
                self._pump(ours)
            except TimeoutError:
                timed_out = True
            code = _wait(pid, self._left())
            if code is None:
                timed_out = True
                _kill(pid)
                code = _wait(pid, 5.0)
        finally:
            try:
                ours.shutdown(socket.SHUT_RDWR)  # wakes the feeder thread if it still reads
            except OSError:
                pass
            ours.close()
        remote = b"".join(self._remote_err).decode("utf-8", "replace")
        return Transfer(-signal.SIGKILL if code is None else code, _read(out), remote + _read(err), timed_out)

    def _pump(self, ours: socket.socket) -> None:
        """Run rsync's server on a channel and move bytes until the host's side ends."""
        command, early = self._command_line(ours)
        if command is None:
            return  # rsync ended before it started its remote shell: its stderr says why
        chan = self.transport.open_session(timeout=self._left())
        try:
            if not exec_within(chan, command, self.deadline):
                raise TimeoutError
            feeder = threading.Thread(target=self._feed, args=(ours, chan, early), name="rsync-feed", daemon=True)
            feeder.start()
            while True:
                chan.settimeout(self._left())
                data = chan.recv(PIECE)  # past the deadline: TimeoutError
                while chan.recv_stderr_ready():
                    self._remote_err.append(chan.recv_stderr(PIECE))
                if not data:
                    break
                ours.sendall(data)
            try:
                ours.shutdown(socket.SHUT_WR)  # socat (-t0) exits, and rsync after it
            except OSError:
                pass
            while chan.recv_stderr_ready():
                self._remote_err.append(chan.recv_stderr(PIECE))
        finally:
            chan.close()

    def _command_line(self, ours: socket.socket) -> tuple[str | None, bytes]:
        """What rsync asked its remote shell to run, and the bytes that followed it."""
        buf = b""
        while True:
            fields = buf.split(b"\0")
            if len(fields) > 1 and fields[0].isdigit() and len(fields) > int(fields[0]) + 1:
                count = int(fields[0])
                args = [f.decode("utf-8", "surrogateescape") for f in fields[1 : count + 1]]
                rest = b"\0".join(fields[count + 1 :])
                if not args or args[0] != self.host_token:
                    raise paramiko.SSHException(f"rsync asked its remote shell for {args[:1]}, not the host")
                return " ".join(args[1:]), rest  # as ssh joins its arguments
            ours.settimeout(max(self._left(), 0.001))
            data = ours.recv(PIECE)  # past the deadline: TimeoutError
            if not data:
                return None, b""
            buf += data

    def _feed(self, ours: socket.socket, chan: paramiko.Channel, early: bytes) -> None:
        """rsync -> host, until rsync's side ends (then end of file on the channel)."""
        ours.settimeout(None)
        try:
            if early:
                chan.sendall(early)
            while data := ours.recv(PIECE):
                chan.sendall(data)
            chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the channel or the socket closed: the reading side reports it


def _rsync() -> str:
    path = shutil.which("rsync")
    if path is None:
        raise FileNotFoundError("rsync is not installed on the deploy host")
    return path


def _wait(pid: int, timeout: float) -> int | None:
    """rsync's exit code, or None if it is still running after `timeout` seconds."""
    fd = os.pidfd_open(pid)
    try:
        poll = select.poll()  # not select(): a fleet's connections take fds past 1024
        poll.register(fd, select.POLLIN)
        if not poll.poll(timeout * 1000):
            return None
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # rsync, sh and socat: its own session
    except ProcessLookupError:
        pass


def _read(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while data := os.read(fd, PIECE):
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(fd)


def rsync_argv(source: Path, host_token: str, dest: str, options: Sequence[str], io_timeout: float) -> list[str]:
    """The rsync command line: `-a --stats`, its own I/O timeout, the relay as remote shell."""
    return [
        "rsync",
        "-a",
        "--stats",
        f"--timeout={int(max(io_timeout, 5))}",
        "-e",
        RSH,
        *options,
        f"{source}/",
        f"{host_token}:{dest}/",
    ]
