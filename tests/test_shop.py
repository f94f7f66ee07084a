"""The demo shop as real processes: master, workers, ctl, on a hand-made deploy layout."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.demo.layout import (
    activate_release,
    export_commit,
    host_python,
    install_release,
    kill_shop,
    shop_ctl,
    shop_source,
)
from console.demo.trunk import create_trunk

REV_A = "a" * 40
REV_B = "b" * 40
REV_C = "c" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, method: str = "GET", body: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def checkout(port: int, product: int, qty: int = 1) -> int:
    return get(port, "/checkout", "POST", f"product={product}&qty={qty}")[0]


class Shop:
    """One shop on 127.0.0.1: a deploy path, a port, and ctl commands."""

    def __init__(self, root: Path, statsd: str = "") -> None:
        self.deploy_path = root
        self.port = free_port()
        self.statsd = statsd

    def install(self, release_id: str, revision: str, source: Path | None = None, **kw) -> Path:
        return install_release(source or shop_source(), self.deploy_path, release_id, revision, **kw)

    def ctl(self, command: str):
        return shop_ctl(self.deploy_path, command, port=self.port, statsd=self.statsd)

    def graceful(self) -> str:
        done = self.ctl("graceful")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def manifest(self, release_id: str) -> dict[str, str]:
        return json.loads((self.deploy_path / "releases" / release_id / "manifest.json").read_text())


@pytest.fixture
def make_shop(tmp_path):
    shops: list[Shop] = []

    def make(name: str = "host", statsd: str = "") -> Shop:
        shop = Shop(tmp_path / name, statsd)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        kill_shop(shop.deploy_path)


@pytest.fixture
def shop(make_shop) -> Shop:
    s = make_shop()
    s.install("r1", REV_A)
    out = s.graceful()
    assert out.startswith("started: revision " + REV_A)
    return s


def test_pages_refer_to_assets_only_through_the_manifest(shop):
    manifest = shop.manifest("r1")
    assert set(manifest) == {"css/shop.css", "js/shop.js", "img/logo.svg", "img/cart.svg"}
    for path in ["/", "/product/3"]:
        status, body = get(shop.port, path)
        assert status == 200
        urls = set(re.findall(r'(?:href|src)="(/assets/[^"]+)"', body.decode()))
        assert urls and urls <= set(manifest.values())
        assert "/assets/css/shop.css" not in body.decode()
    status, body = get(shop.port, "/product/3")
    assert manifest["img/cart.svg"] in body.decode()
    for logical, url in manifest.items():
        status, data = get(shop.port, url)
        assert status == 200, url
        assert data == (shop_source() / "assets" / logical).read_bytes()


def test_missing_assets_and_escapes_are_404(shop):
    for path in [
        "/assets/css/shop.0000000000.css",
        "/assets/css/",
        "/assets/../run/shop.pid",
        "/assets/%2e%2e/run/shop.pid",
        "/assets//etc/passwd",
        "/nope",
        "/product/99",
    ]:
        assert get(shop.port, path)[0] == 404, path
    assert get(shop.port, "/checkout")[0] == 405
    assert checkout(shop.port, 42) == 400


def test_health_answers_the_revision_of_the_loaded_release(shop):
    assert get(shop.port, "/health") == (200, (REV_A + "\n").encode())
    status = shop.ctl("status")
    assert status.returncode == 0 and REV_A in status.stdout


def test_metrics_are_prometheus_text(shop):
    assert get(shop.port, "/")[0] == 200
    assert checkout(shop.port, 1) == 200
    status, body = get(shop.port, "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    value = {s.name: s.value for f in families.values() for s in f.samples if not s.labels}
    assert value["shop_requests_total"] == 2  # /metrics and /health are not counted
    assert value["shop_checkouts_total"] == 1
    assert value["shop_checkout_failures_total"] == 0
    assert value["shop_errors_total"] == 0
    assert families["shop_request_duration_seconds"].type == "histogram"
    assert value["shop_request_duration_seconds_count"] == 2
    info = families["shop_info"].samples[0]
    assert info.labels == {"revision": REV_A}


def test_statsd_packets_arrive(make_shop):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(0.2)
        s = make_shop(statsd=f"127.0.0.1:{udp.getsockname()[1]}")
        s.install("r1", REV_A)
        s.graceful()
        assert get(s.port, "/")[0] == 200
        assert checkout(s.port, 2) == 200
        packets: list[str] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(packets) < 5:
            try:
                packets.append(udp.recv(1024).decode())
            except TimeoutError:
                pass
    assert packets.count("shop.requests:1|c") == 2
    assert packets.count("shop.checkouts:1|c") == 1
    latencies = [p for p in packets if p.startswith("shop.latency:")]
    assert len(latencies) == 2 and all(re.fullmatch(r"shop\.latency:[0-9.]+\|ms", p) for p in latencies)


def test_unreachable_statsd_never_fails_a_request(make_shop):
    s = make_shop(statsd=f"127.0.0.1:{free_port()}")  # nobody listens: ICMP port unreachable
    s.install("r1", REV_A)
    s.graceful()
    assert [get(s.port, "/")[0] for _ in range(20)] == [200] * 20


def _changed_source(tmp_path: Path, name: str, css: str) -> Path:
    """A copy of the shop source with a line added to its CSS: a new hashed asset."""
    import shutil

    src = tmp_path / name
    shutil.copytree(shop_source(), src, ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / "assets/css/shop.css", "a") as f:
        f.write(css + "\n")
    return src


def test_graceful_reload_under_load_refuses_and_drops_nothing(shop, tmp_path):
    errors: list[str] = []
    seen: set[str] = set()
    counts = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def shopper(n: int) -> None:
        while not stop.is_set():
            try:
                status, body = get(shop.port, "/")
                assets = re.findall(r'href="(/assets/[^"]+\.css)"', body.decode())
                results = [status, get(shop.port, assets[0])[0], checkout(shop.port, 1 + n % 10)]
                status, rev = get(shop.port, "/health")
                results.append(status)
                with lock:
                    counts[0] += 4
                    seen.add(rev.decode().strip())
                    if results != [200] * 4:
                        errors.append(f"statuses {results}")
            except Exception as exc:  # noqa: BLE001 - refused, reset, timed out: all count
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=shopper, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        # A request in flight across the reload: the old worker accepted it before the reload
        # and must still answer it, from the old release, after the new worker took over.
        slow = socket.create_connection(("127.0.0.1", shop.port))
        slow.sendall(b"GET /health HTTP/1.0\r\n")
        time.sleep(0.3)
        for release_id, revision in [("r2", REV_B), ("r3", REV_C)]:
            shop.install(release_id, revision, _changed_source(tmp_path, release_id, f"/* {release_id} */"))
            out = shop.graceful()
            assert out.startswith(f"reloaded: revision {revision}"), out
            assert get(shop.port, "/health")[1].decode().strip() == revision
            time.sleep(0.3)
        slow.sendall(b"\r\n")
        slow.settimeout(10)
        answer = b""
        while chunk := slow.recv(4096):
            answer += chunk
        slow.close()
        assert answer.startswith(b"HTTP/1.0 200") and answer.endswith((REV_A + "\n").encode())
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert counts[0] > 100
    assert {REV_A, REV_B, REV_C} <= seen
    log = (shop.deploy_path / "run" / "shop.log").read_text()
    assert log.count("finished its requests and exited") >= 1


def test_a_release_that_cannot_load_leaves_the_old_one_serving(shop):
    bad = shop.install("r2", REV_B)
    (bad / "manifest.json").write_text('{"css/shop.css": "/assets/css/shop.x.css"}\n')  # lacks js/shop.js
    done = shop.ctl("graceful")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "reload failed, still serving " + REV_A in done.stderr
    assert get(shop.port, "/health")[1] == (REV_A + "\n").encode()
    activate_release(shop.deploy_path, "r1")
    assert shop.graceful().startswith("reloaded: revision " + REV_A)


def test_ctl_stop_and_status(shop):
    stopped = shop.ctl("stop")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped")
    status = shop.ctl("status")
    assert status.returncode == 3 and "not running" in status.stderr
    with pytest.raises(ConnectionRefusedError):
        get(shop.port, "/health")
    assert not (shop.deploy_path / "run" / "shop.pid").exists()


def test_ctl_fails_in_one_line_when_the_port_is_taken(make_shop):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        s = make_shop()
        s.port = taken.getsockname()[1]
        s.install("r1", REV_A)
        done = s.ctl("graceful")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot listen on 127.0.0.1" in done.stderr


def test_ctl_refuses_bad_arguments_in_one_line_with_its_usage(shop):
    ctl = shop.deploy_path / "current" / "shop" / "ctl.py"
    for argv, last in (
        (["graceful", "--port", "x"], "ctl.py: --port: not a number: 'x'"),
        (["graceful", "--colour=red"], "ctl.py: unknown argument '--colour=red'"),
        (["reboot"], "ctl.py: a command first, one of graceful, start, stop, status, run"),
    ):
        done = subprocess.run([host_python(), str(ctl), *argv], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done
        assert done.stderr.splitlines()[0].startswith("usage: ctl.py {graceful,")
        assert done.stderr.splitlines()[-1] == last
    assert get(shop.port, "/health")[0] == 200  # nothing happened to the running shop


class StatsDSink:
    """A UDP socket that a thread drains into a list, so no datagram is dropped."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.packets: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while not self.stop.is_set():
            try:
                self.packets.append(self.sock.recv(1024).decode())
            except TimeoutError:
                pass

    def close(self) -> list[str]:
        time.sleep(0.2)
        self.stop.set()
        self.thread.join()
        self.sock.close()
        return self.packets


def test_the_breaking_commit_fails_about_30_percent_of_checkouts_and_the_fix_restores_them(make_shop, tmp_path):
    trunk = create_trunk(tmp_path / "trunk.git")
    sink = StatsDSink()
    try:
        s = make_shop(statsd=sink.address)
        failed: dict[str, int] = {}
        for role in ["initial", "breaking", "fix"]:
            commit = trunk.commits[role]
            src = tmp_path / f"src-{role}"
            export_commit(trunk.path, commit, src)
            s.install(role, commit, src)
            s.graceful()
            assert get(s.port, "/health")[1].decode().strip() == commit
            statuses = [checkout(s.port, 1 + i % 10, 1 + i % 3) for i in range(100)]
            assert set(statuses) <= {200, 500}
            failed[role] = statuses.count(500)
    finally:
        packets = sink.close()
    assert failed["initial"] == 0 and failed["fix"] == 0
    assert 20 <= failed["breaking"] <= 40
    assert packets.count("shop.errors:1|c") == failed["breaking"]
    assert packets.count("shop.checkout_failures:1|c") == failed["breaking"]
    assert packets.count("shop.checkouts:1|c") == 300 - failed["breaking"]


def test_the_shop_imports_only_the_standard_library():
    import ast
    import sys

    for path in (shop_source() / "shop").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            )
            for name in names:
                top = name.split(".")[0]
                assert top == "shop" or top in sys.stdlib_module_names, f"{path.name} imports {name}"
