"""rsync over the host's open SSH connection: no second connection, no Python per rsync.

rsync runs here as always; only its remote shell (`-e`) changes. Instead of `ssh`, rsync
starts `sh`, which writes its pid and rsync's remote command line to fd 3 (one end of a
socket pair whose other end this process holds) and waits for a word. This process
takes the shell's stdin and stdout, rsync's own pipes, with `pidfd_getfd` (the shell is
its grandchild), says "taken", and the shell exits: from then on this process is rsync's
peer. It opens a channel on the host's open Paramiko connection, execs rsync's server
there and pumps bytes both ways:

    rsync --(its pipes)-- this process --(SSH channel)-- rsync --server

Where the kernel refuses `pidfd_getfd` (older than 5.6, or a sandbox that forbids
ptrace), it says "relay" instead and the shell becomes `socat -t0`, joining rsync's pipes
to fd 3: one more program (~3 ms of CPU), the same bytes.

Why this shape (the traps it avoids):
- sh is ~0.6 ms of CPU to start; a Python helper per rsync would cost 10-20 ms and
  ~18 ms of CPU each;
- rsync waits for its remote shell to exit, polling every 20 ms (`wait_process`): a shell
  that already exited costs it nothing, and socat runs with `-t0`, since a relay that
  lingers after the host's side ended (socat's default 0.5 s) costs each rsync that much;
- rsync is started with `posix_spawn` and the socket dup'ed to fd 3 (dash redirects only
  single-digit fds), in a session of its own so a Ctrl-C for the deploy never reaches it;
- the channel is fed in pieces of at most 64 KiB (`Channel.sendall` of one large buffer
  is quadratic), by a second thread while the calling thread reads it.

rsync's stdout and stderr go to memory files (they never fill and block it); the host's
stderr (rsync's server's, the shell's) is put before rsync's own, as ssh would print it.
The exit code is rsync's. Past the deadline, rsync's session is killed and the channel
closed.
"""

from __future__ import annotations

import ctypes
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

from console.fleet.connection import rsync_target
from console.fleet.runner import exec_within

#: rsync's remote shell: copies of its pipes at fds 4 and 5 (a builtin's redirection swaps
#: fds 0 and 1 for a moment), then its pid and command line (the count, then each argument,
#: each NUL-terminated) to fd 3; then, told "taken", it exits (this process took its pipes),
#: or told "relay", it becomes socat between its pipes and fd 3. rsync splits this string at
#: spaces, honouring the single quotes; the backslash goes to printf as it is.
RSH = (
    """sh -c 'exec 4<&0 5>&1 && printf "%s\\0" "$$" "$#" "$@" >&3 && read -r how <&3 && """
    """if [ "$how" = relay ]; then exec socat -t0 -b65536 - FD:3 4<&- 5>&-; fi' rsync-relay"""
)
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
            except BaseException:
                _kill(pid)  # the connection failed under it: rsync must not outlive this call
                _wait(pid, 5.0)
                raise
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
        header = self._command_line(ours)
        if header is None:
            return  # rsync ended before it started its remote shell: its stderr says why
        shell, command = header
        from_rsync, to_rsync = self._take_pipes(shell, ours)
        relayed = to_rsync == ours.fileno()  # socat's way: one socket both ways, ours to close
        feeding = False
        try:
            chan = self.transport.open_session(timeout=self._left())
            try:
                if not exec_within(chan, command, self.deadline):
                    raise TimeoutError
                feeder = threading.Thread(
                    target=self._feed, args=(from_rsync, chan, not relayed), name="rsync-feed", daemon=True
                )
                feeder.start()
                feeding = True
                while True:
                    chan.settimeout(self._left())
                    data = chan.recv(PIECE)  # past the deadline: TimeoutError
                    while chan.recv_stderr_ready():
                        self._remote_err.append(chan.recv_stderr(PIECE))
                    if not data:
                        break
                    _write_all(to_rsync, data)
                while chan.recv_stderr_ready():
                    self._remote_err.append(chan.recv_stderr(PIECE))
            finally:
                chan.close()
        finally:
            # end of file for rsync: the host's side is done (socat, -t0, exits at once)
            if relayed:
                try:
                    ours.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            else:
                os.close(to_rsync)
                if not feeding:
                    os.close(from_rsync)

    def _take_pipes(self, shell: int, ours: socket.socket) -> tuple[int, int]:
        """rsync's pipes to its remote shell, taken from the shell with `pidfd_getfd` (the
        shell then exits and this process is rsync's peer); where the kernel refuses
        (an older one, a sandbox without ptrace), socat relays them over `ours` instead."""
        try:
            pipes = _take_fd(shell, 4), _take_fd(shell, 5)
        except OSError:
            ours.settimeout(None)
            ours.sendall(b"relay\n")
            return ours.fileno(), ours.fileno()
        ours.sendall(b"taken\n")
        return pipes

    def _command_line(self, ours: socket.socket) -> tuple[int, str] | None:
        """The remote shell's pid and what rsync asked it to run (None: rsync ended first)."""
        buf = b""
        while True:
            fields = buf.split(b"\0")
            if len(fields) > 2 and fields[1].isdigit() and len(fields) > int(fields[1]) + 2:
                pid, count = int(fields[0]), int(fields[1])
                args = [f.decode("utf-8", "surrogateescape") for f in fields[2 : count + 2]]
                if not args or args[0] != self.host_token:
                    raise paramiko.SSHException(f"rsync asked its remote shell for {args[:1]}, not the host")
                return pid, " ".join(args[1:])  # as ssh joins its arguments
            ours.settimeout(max(self._left(), 0.001))
            data = ours.recv(PIECE)  # past the deadline: TimeoutError
            if not data:
                return None
            buf += data

    def _feed(self, from_rsync: int, chan: paramiko.Channel, own: bool) -> None:
        """rsync -> host, until rsync's side ends (then end of file on the channel).
        `own`: the fd is this thread's to close (a pipe taken from the shell)."""
        try:
            while data := os.read(from_rsync, PIECE):
                chan.sendall(data)
            chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the channel or the pipe closed: the reading side reports it
        finally:
            if own:
                os.close(from_rsync)


_libc = ctypes.CDLL(None, use_errno=True)
_SYS_PIDFD_GETFD = 438  # the same number on every architecture Linux has added it to


def _take_fd(pid: int, fd: int) -> int:
    """A copy of process `pid`'s file descriptor `fd` (pidfd_getfd(2), Linux 5.6+; close-on-exec)."""
    pidfd = os.pidfd_open(pid)
    try:
        got = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if got < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return got
    finally:
        os.close(pidfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
        rsync_target(host_token, dest),
    ]
