"""Fabric's remote runner, tuned for latency: what `fabric.Connection.run` uses here.

Stock `Connection.run` took 16.7 ms for `true` on an open connection; most of it is
invoke's `Runner` waiting politely: a stdin thread per command that sleeps `input_sleep`
(10 ms) between reads (and puts a terminal into cbreak mode each time), a wait loop that
sleeps the same 10 ms between looks at the channel, a `threading.Timer` thread per
command for its timeout, and two reader threads. `Command` keeps the rest of the Runner
(options, encoding, the `Result`, the failure types) and changes how it waits:

- no threads: the calling thread reads stdout and stderr itself, woken by the channel's
  own buffers (Paramiko's `BufferedPipe.set_event`) when data, end of file or the close
  arrives, never by a timer;
- stdin is never pumped: the command's input (a secret, never its argv; a staging's
  payload) is sent right after the exec, in 64 KiB pieces, then end of file, so a command
  that reads stdin sees exactly that and one that doesn't sees an empty input, never the
  terminal's; a command that exits before reading it all is judged by its exit status;
- every wait has the run's deadline, the exec request's reply included (Paramiko waits
  for that without one): past it the channel is closed and invoke's `CommandTimedOut`
  raised.

`talk` is the same wait for a command one talks to while it runs (`Connection.stream`):
its stdin fed by a thread as the caller's feed yields, each line of its stdout handed on
as it arrives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paramiko
from fabric.runners import Remote
from paramiko.common import cMSG_CHANNEL_REQUEST

#: The pieces stdin is sent in (Paramiko's `Channel.sendall` of one large buffer is quadratic).
PIECE = 65536


def exec_within(chan: paramiko.Channel, command: str, deadline: float) -> bool:
    """`Channel.exec_command`, but the wait for the host's reply ends at `deadline`
    (monotonic); False if it passed. A refusal or a close raises SSHException."""
    m = paramiko.Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("exec")
    m.add_boolean(True)
    m.add_string(command)
    chan._event_pending()
    chan.transport._send_user_message(m)
    if not chan.event.wait(max(0.0, deadline - time.monotonic())):
        return False
    if not chan.event_ready:
        raise paramiko.SSHException("the host closed the session instead of running the command")
    return True


def send_pieces(chan: paramiko.Channel, data: bytes) -> None:
    """`Channel.sendall` in `PIECE`s (sendall of one large buffer is quadratic)."""
    for start in range(0, len(data), PIECE):
        chan.sendall(data[start : start + PIECE])


class PastDeadline(Exception):
    """`talk`'s command ran past its deadline (invoke's `CommandTimedOut` for `Command`)."""


def talk(
    transport: paramiko.Transport,
    command: str,
    deadline: float,
    feed: Iterable[bytes],
    on_line: Callable[[str], None],
) -> tuple[str, str, int]:
    """Run `command` on a new channel until it exits or `deadline` (monotonic) passes:
    `feed` goes to its stdin from a thread of its own (then end of file), each line of its
    stdout to `on_line` as it arrives. Returns (stdout, stderr, exit status; -1 if the
    channel closed without one). Past the deadline: `PastDeadline`, the channel closed."""
    chan = transport.open_session(timeout=max(0.001, deadline - time.monotonic()))
    try:
        if not exec_within(chan, command, deadline):
            raise PastDeadline
        threading.Thread(target=_feed, args=(chan, feed), name="stream-feed", daemon=True).start()
        wake = threading.Event()
        chan.in_buffer.set_event(_Wake(wake))
        chan.in_stderr_buffer.set_event(_Wake(wake))
        out: list[bytes] = []
        err: list[bytes] = []
        partial = b""
        while True:
            wake.clear()
            while chan.recv_ready():
                data = chan.recv(PIECE)
                out.append(data)
                *lines, partial = (partial + data).split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace"))
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(PIECE))
            if chan.closed or (chan.eof_received and chan.exit_status_ready()):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise PastDeadline
            wake.wait(left)
        if partial:
            on_line(partial.decode("utf-8", "replace"))
        code = chan.exit_status if chan.exit_status_ready() else -1
        return b"".join(out).decode("utf-8", "replace"), b"".join(err).decode("utf-8", "replace"), code
    finally:
        chan.close()


def _feed(chan: paramiko.Channel, feed: Iterable[bytes]) -> None:
    """A command's stdin, piece by piece as `feed` yields, then end of file."""
    try:
        for data in feed:
            send_pieces(chan, data)
        chan.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass  # the channel closed under it: the reading side reports why


class _Wake:
    """What a channel buffer signals: data, end of file or close. Only `set` counts (the
    buffer clears its event when it runs empty; the reader clears this one itself)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def set(self) -> None:
        self.event.set()

    def clear(self) -> None:
        pass


class Command(Remote):
    """`fabric.runners.Remote` without its polling (see the module docstring)."""

    deadline = float("inf")
    _timed_out = False

    def start_timer(self, timeout: int | float | None) -> None:
        """A deadline instead of a timer thread (set once: `start` sets it before the exec)."""
        if timeout and self.deadline == float("inf"):
            self.deadline = time.monotonic() + timeout

    @property
    def timed_out(self) -> bool:
        return self._timed_out

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def start(self, command: str, shell: str, env: dict[str, Any], timeout: float | None = None) -> None:
        # invoke starts the timer after start(); the exec's reply is waited for in here
        self.start_timer(self.opts["timeout"])
        super().start(command, shell, env)
        if self._timed_out:
            return
        stdin = self.streams["in"]
        data = stdin.read() if stdin else b""
        if isinstance(data, str):
            data = data.encode(self.encoding)
        try:
            send_pieces(self.channel, data)
            self.channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the command ended without reading it all: its exit status says how it went

    def send_start_message(self, command: str) -> None:
        if not exec_within(self.channel, command, self.deadline):
            self._expire()

    def create_io_threads(self) -> tuple[dict, list[str], list[str]]:
        return {}, [], []

    def wait(self) -> None:
        """Read stdout and stderr until end of file and exit status (or close), within the deadline."""
        chan = self.channel
        out: list[bytes] = []
        err: list[bytes] = []
        wake = threading.Event()
        chan.in_buffer.set_event(_Wake(wake))
        chan.in_stderr_buffer.set_event(_Wake(wake))
        while not self._timed_out:
            wake.clear()
            while chan.recv_ready():
                out.append(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            if chan.closed or (chan.eof_received and chan.exit_status_ready()):
                break
            if not wake.wait(max(0.0, self._left())) and self._left() <= 0:
                self._expire()
        self.stdout.append(b"".join(out).decode(self.encoding, "replace"))
        self.stderr.append(b"".join(err).decode(self.encoding, "replace"))

    def _expire(self) -> None:
        self._timed_out = True
        self.channel.close()

    def returncode(self) -> int:
        """The exit status; -1 if the channel closed without one (a lost connection, a timeout)."""
        return self.channel.exit_status if self.channel.exit_status_ready() else -1
