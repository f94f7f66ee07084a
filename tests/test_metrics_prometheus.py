"""The Prometheus source against a real Prometheus server (Debian package `prometheus`), which
scrapes a prometheus-client endpoint this test serves on 127.0.0.1 while the same events go
as StatsD to the collector: both sources must agree on the checkout rate within 10%.
Also the PromQL the source writes, and its one-line errors."""

from __future__ import annotations

import http.server
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from console.config.inventory import Host, Inventory, KeyMetric, Metrics, SSHSettings
from console.core.errors import ConsoleError
from console.metrics.backends import source_for
from console.metrics.prometheus import PrometheusSource, expression
from console.metrics.statsd import StatsdSource, ensure_collector, stop_collector
from console.metrics.store import StoreReader, store_path
from support.servers import PROMETHEUS, prometheus_ready, start_prometheus, stop_process


def _inventory(tmp_path: Path, statsd_port: int, prometheus: str | None = None) -> Inventory:
    return Inventory(
        path=tmp_path / "lab.yaml",
        environment="lab",
        repo="/srv/repo",
        branch="main",
        deploy_path="/srv/www",
        ssh=SSHSettings("deploy", tmp_path / "key", tmp_path / "known_hosts"),
        hosts=(Host("web01", "127.0.0.1"),),
        state_dir=tmp_path / "state",
        metrics=Metrics(statsd=("127.0.0.1", statsd_port), prometheus=prometheus),
    )


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# -- the PromQL the source writes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric, window, expr, windowed",
    [
        (KeyMetric("c", "shop_checkouts_total"), 60, "sum(rate(shop_checkouts_total[60s])) * 60", True),
        (
            KeyMetric("c", 'shop_checkouts_total{job="shop"}'),
            30.4,
            'sum(rate(shop_checkouts_total{job="shop"}[30s])) * 60',
            True,
        ),
        (
            KeyMetric("l", "shop_request_duration_seconds", stat="p95"),
            60,
            "histogram_quantile(0.95, sum by (le) (rate(shop_request_duration_seconds_bucket[60s]))) * 1000",
            True,
        ),
        (
            KeyMetric("l", "shop_request_duration_seconds_bucket", stat="mean"),
            60,
            "(sum(rate(shop_request_duration_seconds_sum[60s])) / sum(rate(shop_request_duration_seconds_count[60s])))"
            " * 1000",
            True,
        ),
        (KeyMetric("q", "queue_depth", stat="gauge"), 60, "sum(last_over_time(queue_depth[60s]))", True),
        (KeyMetric("c", "sum(rate(x[$window])) * 60"), 45, "sum(rate(x[45s])) * 60", True),
        (KeyMetric("c", "sum(rate(x[1m])) * 60"), 45, "sum(rate(x[1m])) * 60", False),
    ],
)
def test_expression(metric, window, expr, windowed):
    assert expression(metric, window) == (expr, windowed)


# -- one-line errors naming the URL ------------------------------------------------------------------


class _Answers(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/bad/"):
            status, body = 400, b'{"status":"error","errorType":"bad_data","error":"parse error:\\nunexpected"}'
        elif self.path.startswith("/html/"):
            status, body = 200, b"<html>\n<h1>not prometheus</h1>"
        else:
            status, body = 503, b"down for maintenance"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def answers():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "prefix, message",
    [
        (
            "/bad",
            "/bad/api/v1/query (query 'sum(rate(shop_checkouts_total[60s])) * 60'): HTTP 400: "
            "bad_data: parse error: unexpected",
        ),
        (
            "/html",
            "/html/api/v1/query (query 'sum(rate(shop_checkouts_total[60s])) * 60'): "
            "the answer is not JSON: <html> <h1>not prometheus</h1>",
        ),
        (
            "/down",
            "/down/api/v1/query (query 'sum(rate(shop_checkouts_total[60s])) * 60'): HTTP 503: down for maintenance",
        ),
    ],
)
def test_prometheus_errors_are_one_line_naming_the_url(answers, prefix, message):
    source = PrometheusSource(answers + prefix)
    with pytest.raises(ConsoleError) as caught:
        source.value(KeyMetric("c", "shop_checkouts_total"), 1000, 1060)
    assert str(caught.value) == f"Prometheus {answers}{message}"


def test_an_unreachable_prometheus_is_one_line():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ConsoleError, match=rf"^Prometheus {url}/api/v1/query_range \(query .*\): cannot connect: "):
        PrometheusSource(url, timeout=2).series(KeyMetric("c", "shop_checkouts_total"), 1000, 1060, 10)


# -- a real Prometheus server, and StatsD, on the same traffic ------------------------------------------


class _Exporter(http.server.BaseHTTPRequestHandler):
    registry = None

    def do_GET(self):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(self.registry)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus on 127.0.0.1 scraping a prometheus-client endpoint every second."""
    if not PROMETHEUS:
        pytest.skip(
            "/usr/bin/prometheus is missing: install the Debian package `prometheus` (apt-get install -y prometheus)"
        )
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("shop_checkouts", "Checkouts taken.", registry=registry)
    latency = prometheus_client.Histogram(
        "shop_checkout_duration_seconds",
        "Checkout latency.",
        registry=registry,
        buckets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0),
    )
    handler = type("Exporter", (_Exporter,), {"registry": registry})
    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=exporter.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    port = _free_port()
    proc = start_prometheus(tmp_path, port, [f"127.0.0.1:{exporter.server_address[1]}"])
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: proc.poll() is None and prometheus_ready(url), 20, "Prometheus to be ready")
        yield url, counter, latency
    finally:
        stop_process(proc)
        exporter.shutdown()
        exporter.server_close()


def test_prometheus_and_statsd_agree_on_the_checkout_rate(tmp_path, prometheus):
    url, counter, latency = prometheus
    inventory = _inventory(tmp_path, _free_port(socket.SOCK_DGRAM), prometheus=url)
    ensure_collector(inventory)
    try:
        _wait(lambda: StoreReader(store_path(inventory)).alive(0, 2**40), 10, "the collector")
        stop = threading.Event()
        target = inventory.metrics.statsd

        def shoppers():
            """40 checkouts a second, paced, each counted by both systems."""
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                t0, n = time.monotonic(), 0
                while not stop.is_set():
                    ms = 100 + (n % 5) * 50  # 100..300 ms
                    counter.inc()
                    latency.observe(ms / 1000)
                    sock.sendto(f"shop.checkouts:1|c\nshop.checkout:{ms}|ms".encode(), target)
                    n += 1
                    delay = t0 + n / 40 - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)

        traffic = threading.Thread(target=shoppers, daemon=True)
        traffic.start()
        try:
            # a window that starts after Prometheus' first scrape (its start is jittered by up to
            # a scrape interval), fully scraped by the time it is read
            _wait(
                lambda: (
                    b'"value"'
                    in urllib.request.urlopen(f"{url}/api/v1/query?query=shop_checkouts_total", timeout=1).read()
                ),
                10,
                "the first scrape",
            )
            start = time.time() + 0.5
            end = start + 6
            time.sleep(max(0.0, end + 1.2 - time.time()))
            prom_rate = KeyMetric("checkouts", "shop_checkouts_total", source="prometheus", unit="/min")
            statsd_rate = KeyMetric("checkouts", "shop.checkouts", unit="/min")
            prom_source = source_for(inventory, prom_rate)
            assert isinstance(prom_source, PrometheusSource)
            from_prometheus = prom_source.value(prom_rate, start, end)
            from_statsd = source_for(inventory, statsd_rate).value(statsd_rate, start, end)
            series = PrometheusSource(url, min_window=3).series(prom_rate, start, end, 3)
            statsd_series = StatsdSource(store_path(inventory)).series(statsd_rate, start, end, 3)
            p95 = prom_source.value(KeyMetric("l", "shop_checkout_duration_seconds", stat="p95"), start, end)
            statsd_p95 = StatsdSource(store_path(inventory)).value(
                KeyMetric("l", "shop.checkout", stat="p95"), start, end
            )
            with pytest.raises(ConsoleError, match="bad_data"):
                prom_source.value(KeyMetric("x", "sum(rate(x[$window]) +"), start, end)
        finally:
            stop.set()
            traffic.join(5)
    finally:
        stop_collector(inventory)

    assert from_statsd == pytest.approx(2400, rel=0.10)
    assert from_prometheus == pytest.approx(from_statsd, rel=0.10)
    assert [t for t, _ in series] == [start, start + 3]
    assert all(v == pytest.approx(2400, rel=0.2) for _, v in series)
    assert all(v == pytest.approx(2400, rel=0.2) for _, v in statsd_series)
    assert statsd_p95 == pytest.approx(300, rel=0.01)
    assert 250 <= p95 <= 300  # histogram_quantile interpolates inside the 250-300 ms bucket
