"""Shoppers for the demo shop: traffic that catches a push which is not assets-first.

Each visit is what a browser behind a load balancer does: fetch a page from one random
host, then every asset the page refers to from OTHER random hosts (the article's "box 1 /
box 451" case: a page from a host with the new release asks a host without its assets),
then POST a checkout to a random host. `shoppers` threads share one target rate of visits
per second, for a duration or until `stop()`.

Counted: requests, pages, assets, asset 404s, failed requests (connection errors,
timeouts, unexpected statuses), and checkouts taken or failed (HTTP 500 from /checkout,
counted apart from failed requests: a broken release fails checkouts on purpose).

Traffic goes only to loopback and the lab's 198.18.0.0/15; any other address is refused.
"""

from __future__ import annotations

import http.client
import ipaddress
import random
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from console.core.errors import ConsoleError

DEFAULT_HTTP_PORT = 8080
LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")
PRODUCT_IDS = range(1, 11)
_ASSET = re.compile(r'(?:href|src)="(/assets/[^"]+)"')
MAX_SAMPLES = 20


@dataclass
class TrafficSummary:
    """What the shoppers saw. `failed` excludes checkouts that failed with HTTP 500."""

    seconds: float = 0.0
    visits: int = 0
    requests: int = 0
    pages: int = 0
    assets: int = 0
    asset_404s: int = 0
    failed: int = 0
    checkouts_ok: int = 0
    checkouts_failed: int = 0
    samples: list[str] = field(default_factory=list)  # the first failures, one line each

    @property
    def checkout_failure_rate(self) -> float:
        total = self.checkouts_ok + self.checkouts_failed
        return self.checkouts_failed / total if total else 0.0

    def line(self) -> str:
        return (
            f"{self.visits} visits, {self.requests} requests in {self.seconds:.1f} s: "
            f"{self.asset_404s} asset 404s, {self.failed} failed requests, "
            f"checkouts {self.checkouts_ok} ok / {self.checkouts_failed} failed"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_address(host: str) -> None:
    """Refuse (ConsoleError) a host that is not, or does not resolve only to, loopback or 198.18.0.0/15."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConsoleError(f"traffic: cannot resolve host {host!r}: {exc.strerror or exc}") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not (addr.is_loopback or (addr.version == 4 and addr in LAB_NETWORK)):
            raise ConsoleError(f"traffic: host {host!r} is {addr}; expected a loopback or lab (198.18.0.0/15) address")


def host_urls(hosts: Iterable[Any]) -> list[str]:
    """Base URLs (http://address:port) of inventory hosts; the port is the host var
    `http_port` (default 8080)."""
    urls = []
    for host in hosts:
        port = host.vars.get("http_port", DEFAULT_HTTP_PORT)
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise ConsoleError(f"host {host.name}: vars.http_port: expected a port number, got {port!r}") from None
        address = f"[{host.address}]" if ":" in host.address else host.address
        urls.append(f"http://{address}:{port}")
    return urls


class Traffic:
    """Shopper threads against `urls` (base URLs like http://127.0.0.1:8080)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        rate: float = 5.0,
        shoppers: int = 8,
        timeout: float = 5.0,
        seed: int | None = None,
    ) -> None:
        if not urls:
            raise ConsoleError("traffic: no hosts; expected at least one host URL")
        if not rate > 0:
            raise ConsoleError(f"traffic: rate {rate!r}: expected visits per second above 0")
        if shoppers < 1:
            raise ConsoleError(f"traffic: shoppers {shoppers!r}: expected at least 1")
        self.hosts: list[tuple[str, int, str]] = []
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ConsoleError(f"traffic: {url!r}: expected a URL like http://198.18.0.5:8080")
            check_address(parts.hostname)
            self.hosts.append((parts.hostname, parts.port or 80, url.rstrip("/")))
        self.rate, self.shoppers, self.timeout = rate, shoppers, timeout
        self.seed = seed
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._summary = TrafficSummary()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self._deadline = float("inf")
        self._slot = 0

    # -- control -----------------------------------------------------------------------------
    def start(self, duration: float | None = None) -> None:
        """Start the shoppers; they stop after `duration` seconds (None: at `stop()`)."""
        self._started = time.monotonic()
        self._deadline = self._started + duration if duration is not None else float("inf")
        for i in range(self.shoppers):
            rng = random.Random(None if self.seed is None else self.seed + i)
            t = threading.Thread(target=self._shop, args=(rng,), name=f"shopper-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()

    def wait(self) -> TrafficSummary:
        """Wait until every shopper has finished its visit, then return the summary."""
        for t in self._threads:
            while t.is_alive():
                t.join(0.2)  # wakes for KeyboardInterrupt
        return self.summary()

    def run(self, duration: float) -> TrafficSummary:
        """Shop for `duration` seconds (or until `stop()`); returns the summary."""
        self.start(duration)
        try:
            return self.wait()
        finally:
            self.stop()

    def summary(self) -> TrafficSummary:
        """The counts so far (safe to call while shoppers run)."""
        with self._lock:
            s = TrafficSummary(**{**asdict(self._summary), "samples": list(self._summary.samples)})
        s.seconds = (time.monotonic() - self._started) if self._started else 0.0
        return s

    # -- shoppers ----------------------------------------------------------------------------
    def _count(self, **deltas: int) -> None:
        with self._lock:
            for key, n in deltas.items():
                setattr(self._summary, key, getattr(self._summary, key) + n)

    def _sample(self, text: str) -> None:
        with self._lock:
            if len(self._summary.samples) < MAX_SAMPLES:
                self._summary.samples.append(text)

    def _next_visit(self) -> bool:
        """Wait for this shopper's next slot at the shared rate; False when it is time to stop."""
        with self._lock:
            now = time.monotonic()
            slot = self._started + self._slot / self.rate
            if slot < now - 1.0:  # far behind: do not burst to catch up
                self._slot = int((now - self._started) * self.rate)
                slot = now
            self._slot += 1
        if slot >= self._deadline:
            return False
        delay = slot - time.monotonic()
        if delay > 0 and self._stop.wait(delay):
            return False
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _request(
        self, host: tuple[str, int, str], method: str, path: str, body: str | None = None
    ) -> tuple[int, bytes] | str:
        """(status, body), or a one-line reason the request failed."""
        address, port, _ = host
        conn = http.client.HTTPConnection(address, port, timeout=self.timeout)
        headers = {"Connection": "close", "User-Agent": "demo-shopper/1"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
            self._count(requests=1)

    def _shop(self, rng: random.Random) -> None:
        while self._next_visit():
            self._visit(rng)

    def _visit(self, rng: random.Random) -> None:
        self._count(visits=1)
        page_host = rng.choice(self.hosts)
        path = rng.choice(["/"] + [f"/product/{n}" for n in PRODUCT_IDS])
        result = self._request(page_host, "GET", path)
        self._count(pages=1)
        if isinstance(result, str) or result[0] != 200:
            self._count(failed=1)
            self._sample(f"page {page_host[2]}{path}: {result if isinstance(result, str) else result[0]}")
            return
        others = [h for h in self.hosts if h is not page_host] or self.hosts
        for asset in _ASSET.findall(result[1].decode("utf-8", "replace")):
            host = rng.choice(others)
            got = self._request(host, "GET", asset)
            self._count(assets=1)
            if isinstance(got, str) or got[0] != 200:
                if not isinstance(got, str) and got[0] == 404:
                    self._count(asset_404s=1)
                    self._sample(f"asset 404: {host[2]}{asset} (page from {page_host[2]})")
                else:
                    self._count(failed=1)
                    self._sample(f"asset {host[2]}{asset}: {got if isinstance(got, str) else got[0]}")
        host = rng.choice(self.hosts)
        form = urllib.parse.urlencode({"product": rng.choice(PRODUCT_IDS), "qty": rng.randint(1, 3)})
        got = self._request(host, "POST", "/checkout", form)
        if isinstance(got, str) or got[0] not in (200, 500):
            self._count(failed=1)
            self._sample(f"checkout {host[2]}: {got if isinstance(got, str) else got[0]}")
        elif got[0] == 200:
            self._count(checkouts_ok=1)
        else:
            self._count(checkouts_failed=1)
