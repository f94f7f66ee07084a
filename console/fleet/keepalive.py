"""A keepalive that tells a frozen host from a slow link.

OpenSSH's ServerAliveInterval counts replies to keepalive requests, and a request queued
behind a full send buffer (10 rsyncs sharing a slow link) gets no reply in time: ssh gave
up on healthy transfers. Paramiko has no such count at all (its keepalive expects no
reply), and a channel waits for an answer for an hour by default.

Here a host counts as alive while bytes move, in either direction, as the kernel sees
them (`TCP_INFO`): bytes of ours it acknowledged, bytes it sent us. A slow link keeps
acknowledging, so a transfer that moves goes on however long it takes (within its
step's own time limit). A link that has been quiet for half the limit gets a probe that
needs a reply (`keepalive@openssh.com`, want-reply: sshd answers it), sent from the
connection's own Paramiko thread when nothing else was sent, so an idle healthy host
shows progress too. A host with no progress at all for `limit` seconds is frozen (or its
link is cut): its connection is shut down, which wakes every wait on it at once, and the
reason is kept for the failure the step reports.

One watchdog thread per process looks at every open connection twice a second; it only
reads socket counters and never blocks on a connection. Linux only (`TCP_INFO` offsets
120/128, `tcpi_bytes_acked`/`tcpi_bytes_received`, Linux 4.1+); where the counters are
missing, a connection is never declared frozen and the step time limits still hold.
"""

from __future__ import annotations

import socket
import struct
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


class Liveness:
    """One connection's progress, as the watchdog sees it."""

    def __init__(self, sock: socket.socket, transport: paramiko.Transport, limit: float, on_frozen: Callable[[], None]):
        self.sock = sock
        self.limit = limit
        self.on_frozen = on_frozen
        self.last = progress(sock)
        self.since = time.monotonic()
        _install_probe(transport, max(limit / 2, TICK))

    def check(self, now: float) -> bool:
        """Note the progress since the last check; False once the host counts as frozen."""
        seen = progress(self.sock)
        if seen is None or seen != self.last:
            self.last, self.since = seen, now
            return True
        return now - self.since < self.limit


def _install_probe(transport: paramiko.Transport, interval: float) -> None:
    """After `interval` seconds with no packet either way, the connection's own thread
    sends a global request that wants a reply (OpenSSH's own keepalive request).

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
