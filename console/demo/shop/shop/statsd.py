"""A StatsD client that never blocks or fails a request: one UDP datagram per metric,
sent non-blocking, every error swallowed."""

import socket


class StatsD:
    """Send `name:value|type` datagrams to HOST:PORT; with no address, send nothing."""

    def __init__(self, address=""):
        self.target = None
        self.sock = None
        if not address:
            return
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected the StatsD address as HOST:PORT, got {address!r}")
        try:
            family, kind, proto, _, sockaddr = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
        except OSError as exc:
            raise ValueError(f"cannot resolve the StatsD host {host!r}: {exc}") from None
        self.sock = socket.socket(family, kind, proto)
        self.sock.setblocking(False)
        self.target = sockaddr

    def send(self, name, value, kind):
        if self.sock is None:
            return
        try:
            self.sock.sendto(f"{name}:{value}|{kind}".encode(), self.target)
        except OSError:
            pass

    def incr(self, name, count=1):
        self.send(name, count, "c")

    def timing(self, name, ms):
        self.send(name, f"{ms:.3f}".rstrip("0").rstrip("."), "ms")

    def close(self):
        if self.sock is not None:
            self.sock.close()
