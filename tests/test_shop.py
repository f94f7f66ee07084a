"""The demo shop: its WSGI application, and gunicorn (Debian's) serving it through ctl.py on a
hand-made deploy layout, as the engine's `restart` runs it on every host."""

from __future__ import annotations

import ast
import http.client
import io
import json
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.demo.layout import (
    HOST_PYTHON,
    activate_release,
    export_commit,
    install_release,
    kill_shop,
    shop_ctl,
    shop_source,
)
from console.demo.trunk import create_trunk

REV_A = "a" * 40
REV_B = "b" * 40
REV_C = "c" * 40

pytestmark = pytest.mark.skipif(not os.access("/usr/bin/gunicorn", os.X_OK), reason="Debian's gunicorn is missing")


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
    """One shop on 127.0.0.1: a deploy path, a port, and ctl.py commands."""

    def __init__(self, root: Path, statsd: str = "") -> None:
        self.deploy_path = root
        self.port = free_port()
        self.statsd = statsd

    def install(self, release_id: str, revision: str, source: Path | None = None, **kw) -> Path:
        return install_release(source or shop_source(), self.deploy_path, release_id, revision, **kw)

    def ctl(self, command: str):
        return shop_ctl(self.deploy_path, command, bind=f"127.0.0.1:{self.port}", statsd=self.statsd)

    def graceful(self) -> str:
        done = self.ctl("graceful")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def manifest(self, release_id: str) -> dict[str, str]:
        return json.loads((self.deploy_path / "releases" / release_id / "manifest.json").read_text())

    def pids(self) -> tuple[int, int]:
        """(master, worker) from ctl.py status."""
        found = re.search(r"\(master (\d+), worker (\d+)\)", self.ctl("status").stdout)
        assert found, self.ctl("status")
        return int(found[1]), int(found[2])


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


def _changed_source(tmp_path: Path, name: str, css: str) -> Path:
    """A copy of the shop source with a line added to its CSS: a new hashed asset."""
    src = tmp_path / name
    shutil.copytree(shop_source(), src, ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / "assets/css/shop.css", "a") as f:
        f.write(css + "\n")
    return src


# -- the WSGI application, in this process -----------------------------------------------------
@pytest.fixture
def app(tmp_path):
    """The shop's WSGI application of release r1, imported here (and forgotten afterwards)."""
    release = install_release(shop_source(), tmp_path / "www", "r1", REV_A)
    sys.path.insert(0, str(release))
    try:
        from shop.app import Shop as ShopApp
        from shop.statsd import StatsD

        yield ShopApp(str(release), str(tmp_path / "www"), StatsD(""))
    finally:
        sys.path.remove(str(release))
        for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
            del sys.modules[name]


def call(app, method: str, path: str, body: bytes = b"", query: str = "", length: str | None = None):
    """(status line, headers, body) of one WSGI call."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)) if length is None else length,
        "wsgi.input": io.BytesIO(body),
    }
    seen: list = []
    out = b"".join(app(environ, lambda status, headers: seen.extend([status, dict(headers)])))
    return seen[0], seen[1], out


def test_the_wsgi_app_answers_with_its_release_and_refuses_what_it_does_not_serve(app):
    status, headers, body = call(app, "GET", "/health")
    assert (status, body) == ("200 OK", (REV_A + "\n").encode()) and headers["X-Revision"] == REV_A
    status, headers, body = call(app, "HEAD", "/")
    assert status == "200 OK" and body == b"" and int(headers["Content-Length"]) > 0
    assert call(app, "GET", "/checkout")[0] == "405 Method Not Allowed"
    assert call(app, "POST", "/")[1]["Allow"] == "GET, HEAD"
    assert call(app, "POST", "/checkout", b"product=1", length=str(10**6))[0] == "400 Bad Request"
    assert call(app, "POST", "/checkout", b"product=3&qty=2")[0] == "200 OK"
    assert call(app, "GET", "/nope")[0] == "404 Not Found"
    t0 = time.monotonic()
    assert call(app, "GET", "/slow", query="seconds=0.2")[2] == (REV_A + "\n").encode()
    assert time.monotonic() - t0 >= 0.2
    assert call(app, "GET", "/slow", query="seconds=x")[0] == "400 Bad Request"


# -- gunicorn serving it ----------------------------------------------------------------------
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
        "/assets/../run/gunicorn.pid",
        "/assets/%2e%2e/run/gunicorn.pid",
        "/assets//etc/passwd",
        "/nope",
        "/product/99",
    ]:
        assert get(shop.port, path)[0] == 404, path
    assert get(shop.port, "/checkout")[0] == 405
    assert checkout(shop.port, 42) == 400


def test_health_answers_the_revision_and_every_response_closes_its_connection(shop):
    conn = http.client.HTTPConnection("127.0.0.1", shop.port, timeout=10)
    conn.request("GET", "/health")  # HTTP/1.1, which would keep the connection open by default
    response = conn.getresponse()
    assert response.read() == (REV_A + "\n").encode()
    assert response.getheader("Connection") == "close"  # keepalive = 0: a reload strands no connection
    conn.close()
    status = shop.ctl("status")
    assert status.returncode == 0 and REV_A in status.stdout


def test_gunicorn_runs_one_worker_from_the_deploy_path_and_never_imports_the_shop_itself(shop):
    master, worker = shop.pids()
    assert os.readlink(f"/proc/{master}/cwd") == str(shop.deploy_path)  # never a release a cleanup removes
    argv = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
    assert argv[:3] == [b"/usr/bin/python3", b"/usr/bin/gunicorn", b"--config"]
    assert argv[3] == str(shop.deploy_path / "current" / "gunicorn.conf.py").encode()
    children = [p for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == master]
    assert children == [str(worker)]
    # The master must never hold the shop's code (a worker forked after a reload would inherit
    # it): its config imports nothing of the shop (only the standard library, some of it for
    # the forks to inherit), and there is no preload_app.
    config = ast.parse((shop_source() / "gunicorn.conf.py").read_text())
    imported = {a.name for n in ast.walk(config) if isinstance(n, ast.Import) for a in n.names}
    assert not any(isinstance(n, ast.ImportFrom) for n in ast.walk(config))
    stdlib = {"os", "sys", "importlib", "select", "selectors", "signal", "time", "traceback"}
    assert imported <= stdlib | {"http", "json", "mimetypes"}  # the last three: `_preload`
    settings = runpy.run_path(str(shop.deploy_path / "current" / "gunicorn.conf.py"))
    assert not settings.get("preload_app", False)
    assert settings["pythonpath"] == str(shop.deploy_path / "current")  # resolved by each worker's imports


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except OSError:
        return 0


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
        # A request in flight across the reloads: the old worker accepted it before them and
        # must still answer it, from the old release, after the new workers took over.
        slow = socket.create_connection(("127.0.0.1", shop.port))
        slow.sendall(b"GET /health HTTP/1.0\r\n")
        time.sleep(0.3)
        for release_id, revision in [("r2", REV_B), ("r3", REV_C)]:
            shop.install(release_id, revision, _changed_source(tmp_path, release_id, f"/* {release_id} */"))
            out = shop.graceful()
            assert out.startswith(f"reloaded: revision {revision}"), out
            # from the moment ctl.py says so, only the new release answers
            assert {get(shop.port, "/health")[1].decode().strip() for _ in range(20)} == {revision}
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


def test_once_ctl_says_reloaded_an_idle_shop_answers_only_from_the_new_release(shop):
    """An idle gthread worker waits up to a second in its poller, which SIGTERM does not wake;
    without gunicorn.conf.py's post_worker_init it would take the next connection (about half
    the time) and answer it from the old release."""
    shop.install("r2", REV_B)
    answers = []
    for n in range(6):
        release, revision = ("r2", REV_B) if n % 2 == 0 else ("r1", REV_A)
        activate_release(shop.deploy_path, release)
        assert shop.graceful().startswith(f"reloaded: revision {revision}")
        time.sleep(0.05)
        answers += [get(shop.port, "/health")[1].decode().strip() == revision for _ in range(3)]
    assert all(answers), answers


def test_a_release_that_cannot_load_is_refused_and_the_old_one_keeps_serving(shop, tmp_path):
    bad = shop.install("r2", REV_B)
    (bad / "manifest.json").write_text('{"css/shop.css": "/assets/css/shop.x.css"}\n')  # lacks js/shop.js
    broken = _changed_source(tmp_path, "broken", "")
    with open(broken / "shop/pages.py", "a") as f:
        f.write("def oops(:\n")
    shop.install("r3", REV_C, broken)
    for release, reason in (
        ("r2", "LoadError: " + str(bad) + "/manifest.json: no entry for asset 'js/shop.js' (shop/app.py:"),
        ("r3", "SyntaxError: invalid syntax (pages.py, line "),
    ):
        activate_release(shop.deploy_path, release)
        done = shop.ctl("graceful")
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1
        assert f"reload refused, still serving {REV_A}: " in done.stderr and reason in done.stderr, done.stderr
        assert get(shop.port, "/health")[1] == (REV_A + "\n").encode()
    activate_release(shop.deploy_path, "r1")
    assert shop.graceful().startswith("reloaded: revision " + REV_A)


def test_ctl_stop_and_status(shop):
    master, worker = shop.pids()
    stopped = shop.ctl("stop")
    assert stopped.returncode == 0 and stopped.stdout == f"stopped (master {master})\n"
    status = shop.ctl("status")
    assert status.returncode == 3 and "not running" in status.stderr
    with pytest.raises(ConnectionRefusedError):
        get(shop.port, "/health")
    assert not (shop.deploy_path / "run" / "gunicorn.pid").exists()
    assert _ppid(worker) != master
    assert shop.graceful().startswith("started: revision " + REV_A)  # graceful starts what does not run


def test_ctl_refuses_another_address_or_statsd_for_a_running_shop(shop):
    shop.port, shop.statsd = free_port(), ""
    done = shop.ctl("graceful")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "runs with --bind '127.0.0.1:" in done.stderr and "run `ctl.py stop` first" in done.stderr


def test_ctl_fails_in_one_line_when_the_release_cannot_start(make_shop):
    s = make_shop(statsd="no-port-here")
    s.install("r1", REV_A)
    done = s.ctl("graceful")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("shop graceful: gunicorn exited while starting: ")


def test_ctl_refuses_bad_arguments_with_its_usage(shop):
    ctl = shop.deploy_path / "current" / "ctl.py"
    for argv, last in (
        (["graceful", "--timeout", "x"], "ctl.py: --timeout: expected seconds, got 'x'"),
        (["graceful", "--colour=red"], "ctl.py: unknown argument '--colour=red'"),
        (["reboot"], "ctl.py: expected a command first: graceful, stop, status"),
    ):
        done = subprocess.run([HOST_PYTHON, "-I", "-S", str(ctl), *argv], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done
        assert done.stderr.startswith("usage: ctl.py {graceful,stop,status} ")
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
    for path in [*shop_source().glob("*.py"), *(shop_source() / "shop").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            )
            for name in names:
                top = name.split(".")[0]
                assert top == "shop" or top in sys.stdlib_module_names, f"{path.name} imports {name}"
