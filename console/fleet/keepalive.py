"""A keepalive that tells a frozen host from a slow link.

OpenSSH's ServerAliveInterval counts replies to keepalive requests, and a request queued
behind a full send buffer (10 rsyncs sharing a slow link) gets no reply in time: ssh gave
up on healthy transfers. Paramiko has no such count at all (its keepalive expects no
reply), and a channel waits for an answer for an hour by default.

Here a host counts as alive while bytes move, in either direction, as the kernel sees
them (`TCP_INFO`): bytes of ours it acknowledged, bytes it sent us. A slow link keeps
acknowledging, so a transfer that moves goes on however long it takes (within its
step's own time limit). A connection with nothing sent for a third of the limit gets a
probe that needs a reply (`keepalive@openssh.com`, want-reply: sshd answers it), sent
from the connection's own Paramiko thread, so an idle healthy host shows progress too.
A host is frozen (or its link cut) after `limit` seconds without progress while it owes
us something: an acknowledgement of bytes in our send queue, or the reply to a probe
sent at least half the limit ago. Then its connection is shut down, which wakes every
wait on it at once, and the reason is kept for the failure the step reports. A
connection this process was too busy to probe is never taken for a frozen host.

One watchdog thread per process looks at every open connection four times a second; it
only reads socket counters and never blocks on a connection. Linux only (`TCP_INFO`
offsets 120/128, `tcpi_bytes_acked`/`tcpi_bytes_received`, Linux 4.1+; `TIOCOUTQ`); where
the counters are missing, a connection is never declared frozen and the step time limits
still hold.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import threading
import time
import weakref
from collections.abc import Callable

import paramiko
from paramiko.common import cMSG_GLOBAL_REQUEST

#: How often the watchdog looks at the connections.
TICK = 0.25
_TCP_INFO_LEN = 232
_ACKED_RECEIVED = struct.Struct("QQ")  # tcpi_bytes_acked, tcpi_bytes_received at offset 120


def progress(sock: socket.socket) -> tuple[int, int] | None:
    """(bytes of ours the peer acknowledged, bytes the peer sent), or None if unknown."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return None
    if len(info) < 120 + _ACKED_RECEIVED.size:
        return None
    return _ACKED_RECEIVED.unpack_from(info, 120)


def unsent(sock: socket.socket) -> int:
    """Bytes in the socket's send queue: not sent yet, or sent and not acknowledged."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return 0


class Liveness:
    """One connection's progress, as the watchdog sees it.

    Frozen means no progress for `limit` seconds while the host owes us something: bytes
    of ours it has not acknowledged, or the reply to a probe sent at least half the limit
    ago. A connection that is merely quiet, because this process was too busy to send its
    probe in time, is never frozen."""

    def __init__(self, sock: socket.socket, transport: paramiko.Transport, limit: float, on_frozen: Callable[[], None]):
        self.sock = sock
        self.limit = limit
        self.on_frozen = on_frozen
        self.last = progress(sock)
        self.since = self.heard = time.monotonic()  # last progress; last bytes from the host
        self.probed: float | None = None  # when the last probe went out
        _install_probe(transport, max(limit / 3, TICK), self)

    def check(self, now: float) -> bool:
        """Note the progress since the last check; False once the host counts as frozen."""
        seen = progress(self.sock)
        if seen is None or seen != self.last:
            if seen is None or self.last is None or seen[1] != self.last[1]:
                self.heard = now
            self.last, self.since = seen, now
            return True
        if now - self.since < self.limit:
            return True
        unanswered = self.probed is not None and self.probed > self.heard and now - self.probed >= self.limit / 2
        return not (unanswered or unsent(self.sock) > 0)


def _install_probe(transport: paramiko.Transport, interval: float, liveness: Liveness) -> None:
    """After `interval` seconds with nothing sent, the connection's own thread sends a
    global request that wants a reply (OpenSSH's own keepalive request), and notes when.

    It is sent only when the transport is clear to send (not in a key exchange): the
    thread sending it is the one a key exchange needs, so it must never wait for one."""
    ref = weakref.ref(transport)

    def probe() -> None:
        t = ref()
        if t is None or not t.clear_to_send.is_set() or not t.clear_to_send_lock.acquire(blocking=False):
            return
        try:
            if t.clear_to_send.is_set():
                m = paramiko.Message()
                m.add_byte(cMSG_GLOBAL_REQUEST)
                m.add_string("keepalive@openssh.com")
                m.add_boolean(True)
                t._send_message(m)
                liveness.probed = time.monotonic()
        finally:
            t.clear_to_send_lock.release()

    transport.packetizer.set_keepalive(interval, probe)


class Watchdog:
    """The process's one thread that shuts down the connections of frozen hosts."""

    def __init__(self) -> None:
        self._watched: dict[int, Liveness] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, key: int, liveness: Liveness) -> None:
        with self._lock:
            self._watched[key] = liveness
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ssh-watchdog", daemon=True)
                self._thread.start()

    def forget(self, key: int) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def _loop(self) -> None:
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            with self._lock:
                frozen = [k for k, live in self._watched.items() if not live.check(now)]
                for key in frozen:
                    self._watched.pop(key).on_frozen()  # only shuts a socket down: never blocks
                if not self._watched:
                    self._thread = None  # the next watch starts another
                    return


WATCHDOG = Watchdog()
