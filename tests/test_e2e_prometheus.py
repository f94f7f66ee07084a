"""End to end on the demo: a real Prometheus (Debian package `prometheus`) scraping the lab
hosts' /metrics every second and the embedded StatsD collector see the same shoppers; the
checkout rate from `PrometheusSource` and from `StatsdSource` agree within 10% (issue 4,
"Done means" 4)."""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request

import pytest

from console.metrics.backends import source_for
from console.metrics.prometheus import PrometheusSource
from console.metrics.statsd import StatsdSource
from support.demo_fleet import free_tcp_port, make_demo_fleet, wait_for
from support.servers import PROMETHEUS, prometheus_ready, start_prometheus, stop_process

pytestmark = pytest.mark.lab
RATE = 12.0  # visits (and checkouts) per second
WINDOW = 20


@pytest.fixture
def fleet(tmp_path):
    if not PROMETHEUS:
        pytest.skip("/usr/bin/prometheus is missing: install the Debian package `prometheus`")
    url = f"http://127.0.0.1:{free_tcp_port()}"
    key = [
        {"name": "checkouts", "query": "shop.checkouts", "stat": "rate", "unit": "/min", "bad": "down"},
        {
            "name": "checkouts (prometheus)",
            "query": "shop_checkouts_total",
            "source": "prometheus",
            "stat": "rate",
            "unit": "/min",
            "bad": "down",
        },
    ]
    fleet = make_demo_fleet(tmp_path, 6, metrics={"prometheus": url, "key": key})
    yield fleet
    fleet.close()


def _query(url: str, expr: str) -> list:
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    return json.loads(urllib.request.urlopen(full, timeout=2).read())["data"]["result"]


def test_prometheus_and_statsd_agree_on_the_checkout_rate_of_the_demo_shop(fleet, tmp_path):
    inv = fleet.inventory
    first = fleet.deploy(fleet.trunk.initial, override="first install of the demo shop")
    assert first.result == "ok", (first.message, first.hosts_failed[:2])
    url = inv.metrics.prometheus
    targets = [f"{h.address}:{h.vars['http_port']}" for h in inv.hosts]
    proc = start_prometheus(tmp_path, int(url.rsplit(":", 1)[1]), targets)
    fleet.on_close(lambda: stop_process(proc))
    wait_for(lambda: proc.poll() is None and prometheus_ready(url), 30, "Prometheus to be ready", every=0.2)
    wait_for(
        lambda: len([r for r in _query(url, "up") if r["value"][1] == "1"]) == len(targets),
        20,
        "Prometheus to scrape every host",
        every=0.2,
    )

    shop = fleet.traffic(rate=RATE)
    time.sleep(3)  # a few scrapes with shoppers before the window starts
    start = math.ceil(time.time())
    end = start + WINDOW
    time.sleep(max(0.0, end + 2.5 - time.time()))  # the last scrapes and the collector's last flush

    statsd_metric, prom_metric = inv.metrics.key
    prom_source = source_for(inv, prom_metric)
    statsd_source = source_for(inv, statsd_metric)
    assert isinstance(prom_source, PrometheusSource) and isinstance(statsd_source, StatsdSource)
    from_prometheus = prom_source.value(prom_metric, start, end)
    from_statsd = statsd_source.value(statsd_metric, start, end)
    summary = shop.summary()
    print(
        f"checkouts/min over {WINDOW} s: Prometheus {from_prometheus:.1f}, StatsD {from_statsd:.1f}; "
        f"shoppers: {summary.line()}"
    )
    assert summary.failed == 0 and summary.checkouts_failed == 0, summary.samples
    assert from_statsd == pytest.approx(RATE * 60, rel=0.15)  # the shoppers kept their pace
    assert from_prometheus == pytest.approx(from_statsd, rel=0.10)
