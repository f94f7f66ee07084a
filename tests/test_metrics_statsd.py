"""The StatsD parser, the store and its source, p95 on known data, and the collector process
end to end over real UDP on 127.0.0.1."""

from __future__ import annotations

import math
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.config.inventory import Host, Inventory, KeyMetric, Metrics, SSHSettings
from console.config.keys import METRIC_SOURCES
from console.metrics.backends import BACKENDS, source_for
from console.metrics.source import grid
from console.metrics.statsd import StatsdSource, collector_pid, ensure_collector, stop_collector
from console.metrics.statsd.aggregator import Aggregator
from console.metrics.statsd.collector import pid_path
from console.metrics.statsd.protocol import Sample, parse_line, parse_packet
from console.metrics.store import (
    ACCURACY,
    StoreReader,
    StoreWriter,
    bucket_index,
    bucket_value,
    quantile,
    store_path,
)


def _inventory(tmp_path: Path, port: int = 8125, key: tuple[KeyMetric, ...] = ()) -> Inventory:
    return Inventory(
        path=tmp_path / "lab.yaml",
        environment="lab",
        repo="/srv/repo",
        branch="main",
        deploy_path="/srv/www",
        ssh=SSHSettings("deploy", tmp_path / "key", tmp_path / "known_hosts"),
        hosts=(Host("web01", "127.0.0.1"),),
        state_dir=tmp_path / "state",
        metrics=Metrics(statsd=("127.0.0.1", port), key=key),
    )


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the parser ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, sample",
    [
        ("checkouts:1|c", Sample("checkouts", "c", 1.0)),
        ("shop.checkouts:3|c", Sample("shop.checkouts", "c", 3.0)),
        ("checkouts:1|c|@0.1", Sample("checkouts", "c", 1.0, 0.1)),
        ("latency:320|ms", Sample("latency", "ms", 320.0)),
        ("latency:12.5|ms|@0.5", Sample("latency", "ms", 12.5, 0.5)),
        ("latency:7|h", Sample("latency", "ms", 7.0)),
        ("queue:5|g", Sample("queue", "g", 5.0)),
        ("queue:+3|g", Sample("queue", "g", 3.0, delta=True)),
        ("queue:-2|g", Sample("queue", "g", -2.0, delta=True)),
        ("checkouts:1|c|#env:lab", Sample("checkouts", "c", 1.0)),
        ("  checkouts:1|c\r", Sample("checkouts", "c", 1.0)),
    ],
)
def test_parse_line_keeps_every_type(line, sample):
    assert parse_line(line) == sample


@pytest.mark.parametrize(
    "line",
    [
        "",
        "garbage",
        "checkouts",
        "checkouts:",
        "checkouts:1",
        "checkouts:1|",
        "checkouts:one|c",
        "checkouts:1|x",
        ":1|c",
        "check outs:1|c",
        "checkouts:1|c|@0",
        "checkouts:1|c|@2",
        "checkouts:1|c|@abc",
        "checkouts:1|c|junk",
        "checkouts:nan|c",
        "checkouts:inf|ms",
        "users:alice|s",
        "\x00\xff:1|q",
    ],
)
def test_parse_line_ignores_garbage(line):
    assert parse_line(line) is None


def test_parse_packet_reads_several_lines_and_skips_garbage():
    data = b"checkouts:1|c\nnot a metric\nlatency:320|ms\n\n\xff\xfe:9|c|@x\nqueue:5|g"
    assert parse_packet(data) == [
        Sample("checkouts", "c", 1.0),
        Sample("latency", "ms", 320.0),
        Sample("queue", "g", 5.0),
    ]


def test_aggregator_weights_sample_rates_and_applies_gauge_deltas():
    agg = Aggregator()
    for line in ["c:1|c", "c:1|c|@0.1", "c:2|c|@0.5", "t:100|ms|@0.5", "t:300|ms", "g:5|g", "g:+3|g", "g:-1|g"]:
        agg.add(parse_line(line), now=1000.4)
    deltas = agg.take()
    assert deltas[("c", "c", 1000)].count == pytest.approx(1 + 10 + 4)
    timer = deltas[("t", "ms", 1000)]
    assert (timer.count, timer.sum) == (pytest.approx(3.0), pytest.approx(500.0))
    assert deltas[("g", "g", 1000)].last == 7.0
    assert agg.take() == {}


# -- p95 on known data --------------------------------------------------------------------------


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_histogram_keeps_every_value_within_its_accuracy():
    for value in (0.01, 0.5, 1, 3.3, 99.9, 320, 12345.6, 9e6):
        assert bucket_value(bucket_index(value)) == pytest.approx(value, rel=ACCURACY)
    assert bucket_value(bucket_index(0)) == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_p95_matches_the_exact_percentile(seed):
    rng = random.Random(seed)
    values = [rng.lognormvariate(4, 0.8) for _ in range(5000)]
    hist: dict[int, float] = {}
    for v in values:
        hist[bucket_index(v)] = hist.get(bucket_index(v), 0) + 1
    assert quantile(hist, 0.95) == pytest.approx(_nearest_rank(values, 0.95), rel=ACCURACY)
    assert quantile({}, 0.95) is None


def test_p95_and_mean_over_a_window_of_the_store(tmp_path):
    """1..1000 ms spread over ten seconds: the p95 is 950 ms, the mean 500.5 ms."""
    writer = StoreWriter(tmp_path / "m.sqlite")
    agg = Aggregator()
    for i in range(1, 1001):
        agg.add(Sample("latency", "ms", float(i)), now=2000 + (i % 10))
    writer.write(agg.take(), list(range(2000, 2010)))
    writer.close()
    source = StatsdSource(tmp_path / "m.sqlite")
    p95 = KeyMetric("latency", "latency", stat="p95", unit="ms", bad="up")
    mean = KeyMetric("latency", "latency", stat="mean", unit="ms", bad="up")
    assert source.value(p95, 2000, 2010) == pytest.approx(950, rel=ACCURACY)
    assert source.value(mean, 2000, 2010) == pytest.approx(500.5)
    assert source.value(p95, 3000, 3010) is None


# -- the store and its source -------------------------------------------------------------------


def _store_with_traffic(path: Path) -> None:
    """Seconds 1000..1119: 3 checkouts a second, nothing counted in 1060..1069 (but listening),
    the collector down in 1090..1099; a gauge set once at 1005 and 1100."""
    writer = StoreWriter(path)
    agg = Aggregator()
    for ts in range(1000, 1120):
        if 1060 <= ts < 1070 or 1090 <= ts < 1100:
            continue
        for _ in range(3):
            agg.add(Sample("checkouts", "c", 1.0), now=ts + 0.5)
        agg.add(Sample("checkout.time", "ms", 200.0), now=ts + 0.5)
    agg.add(Sample("queue", "g", 4.0), now=1005.1)
    agg.add(Sample("queue", "g", 9.0), now=1100.1)
    writer.write(agg.take(), [ts for ts in range(1000, 1120) if not 1090 <= ts < 1100])
    writer.close()


def test_statsd_source_rates_tell_zero_from_no_data(tmp_path):
    _store_with_traffic(tmp_path / "m.sqlite")
    source = StatsdSource(tmp_path / "m.sqlite")
    rate = KeyMetric("checkouts", "checkouts", unit="/min")
    assert source.value(rate, 1000, 1060) == pytest.approx(180)
    assert source.value(rate, 1000.5, 1060.7) == pytest.approx(180)  # whole seconds inside only
    assert source.value(rate, 1060, 1070) == 0  # listening, nothing counted
    assert source.value(rate, 1090, 1100) is None  # nobody listening
    assert source.value(rate, 1085, 1100) is None  # listening for 5 of 15 s: too little to tell
    assert source.value(rate, 1070, 1100) == pytest.approx(180)  # 20 of 30 s is enough
    assert source.value(rate, 1080, 1110) == pytest.approx(180)  # the rate over the seconds listened
    assert source.value(rate, 5000, 5060) is None
    assert source.value(KeyMetric("typo", "no.such.key"), 1000, 1060) == 0
    timer_rate = KeyMetric("checkout.time", "checkout.time")  # a timer's samples, counted
    assert source.value(timer_rate, 1000, 1060) == pytest.approx(60)


def test_statsd_source_series(tmp_path):
    _store_with_traffic(tmp_path / "m.sqlite")
    source = StatsdSource(tmp_path / "m.sqlite")
    points = source.series(KeyMetric("checkouts", "checkouts"), 1040, 1100, 10)
    assert [t for t, _ in points] == [1040, 1050, 1060, 1070, 1080, 1090]
    assert [v for _, v in points] == [180, 180, 0, 180, 180, None]
    gauge = source.series(KeyMetric("queue", "queue", stat="gauge"), 1000, 1120, 60)
    assert gauge == [(1000, 4.0), (1060, 9.0)]
    p95 = source.series(KeyMetric("t", "checkout.time", stat="p95"), 1050, 1070, 10)
    assert p95[0][1] == pytest.approx(200, rel=ACCURACY) and p95[1][1] is None
    assert grid(0, 10, 3) == [0, 3, 6]


def test_a_missing_store_reads_as_no_data(tmp_path):
    source = StatsdSource(tmp_path / "nothing-here.sqlite")
    metric = KeyMetric("checkouts", "checkouts")
    assert source.value(metric, 0, 60) is None
    assert source.series(metric, 0, 20, 10) == [(0, None), (10, None)]
    assert not (tmp_path / "nothing-here.sqlite").exists()


def test_old_buckets_are_pruned(tmp_path):
    writer = StoreWriter(tmp_path / "m.sqlite", retention=100)
    agg = Aggregator()
    agg.add(Sample("c", "c", 1.0), now=1000)
    agg.add(Sample("c", "c", 1.0), now=1150)
    writer.write(agg.take(), [1000, 1150])
    writer.prune(now=1200)
    writer.close()
    assert [r.ts for r in StoreReader(tmp_path / "m.sqlite").rows("c", "c", 0, 2000)] == [1150]


def test_source_for_picks_the_backend(tmp_path):
    inventory = _inventory(tmp_path)
    source = source_for(inventory, KeyMetric("checkouts", "checkouts"))
    assert isinstance(source, StatsdSource)
    assert source.reader.path == tmp_path / "state" / "metrics.sqlite"
    assert sorted(BACKENDS) == sorted(METRIC_SOURCES)  # every source the inventory allows has a backend


def test_the_source_interface_knows_no_backend():
    """console.metrics.source imports none of its implementations (no cycle through it)."""
    code = (
        "import sys, console.metrics.source\n"
        "loaded = [m for m in sys.modules if m.startswith(('console.metrics.statsd', 'console.metrics.prometheus'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# -- the collector process, over real UDP ----------------------------------------------------------


def _wait(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


@pytest.fixture
def collector(tmp_path):
    """A collector started the way the console starts it, and stopped after the test."""
    inventory = _inventory(tmp_path, port=_free_udp_port())
    ensure_collector(inventory)
    store = store_path(inventory)
    try:
        _wait(lambda: StoreReader(store).alive(0, 2**40))
        yield inventory
    finally:
        stop_collector(inventory)
        pid = collector_pid(store)
        assert pid is None


def test_collector_end_to_end_over_udp(collector):
    inventory = collector
    store = store_path(inventory)
    host, port = inventory.metrics.statsd
    start = time.time()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(200):
            sock.sendto(b"shop.checkouts:1|c", (host, port))
        for i in range(10):
            sock.sendto(b"shop.checkouts:1|c|@0.1\nnonsense\nshop.latency:%d|ms" % (i * 100 + 100), (host, port))
        sock.sendto(b"shop.queue:5|g\nshop.queue:+2|g", (host, port))
    end = time.time() + 1.0
    reader = StoreReader(store)
    _wait(lambda: sum(r.count for r in reader.rows("shop.checkouts", "c", 0, 2**40)) >= 300)
    _wait(lambda: reader.rows("shop.queue", "g", 0, 2**40))
    assert sum(r.count for r in reader.rows("shop.checkouts", "c", 0, 2**40)) == pytest.approx(300)
    source = StatsdSource(store)
    mean = source.value(KeyMetric("l", "shop.latency", stat="mean"), start - 1, end + 1)
    p95 = source.value(KeyMetric("l", "shop.latency", stat="p95"), start - 1, end + 1)
    assert mean == pytest.approx(550)
    assert p95 == pytest.approx(1000, rel=ACCURACY)
    assert source.value(KeyMetric("q", "shop.queue", stat="gauge"), start - 1, end + 1) == 7.0


def test_ensure_collector_starts_one_collector_and_stop_collector_stops_it(collector):
    inventory = collector
    store = store_path(inventory)
    pid = collector_pid(store)
    assert pid is not None
    t0 = time.monotonic()
    ensure_collector(inventory)  # already running: nothing new, and no waiting
    assert time.monotonic() - t0 < 0.5
    assert collector_pid(store) == pid
    assert stop_collector(inventory) is True
    assert collector_pid(store) is None  # the pidfile stays, but nobody holds its lock
    assert pid_path(store).exists()
    assert stop_collector(inventory) is False


def test_a_collector_counts_as_running_from_the_moment_it_is_spawned(tmp_path):
    """A stale pidfile naming a live process is not a collector; a spawned collector counts at
    once, so a second spawner (another console) starts no other one."""
    inventory = _inventory(tmp_path, port=_free_udp_port())
    store = store_path(inventory)
    store.parent.mkdir(parents=True)
    pid_path(store).write_text(f"{os.getpid()}\n")
    assert collector_pid(store) is None
    try:
        ensure_collector(inventory)
        pid = collector_pid(store)
        assert pid is not None and pid != os.getpid()
        ensure_collector(inventory)
        assert collector_pid(store) == pid
    finally:
        stop_collector(inventory)
    assert collector_pid(store) is None


def test_a_foreground_collector_refuses_to_double_a_running_one(collector):
    store = store_path(collector)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.metrics.statsd",
            "--listen",
            f"127.0.0.1:{_free_udp_port()}",
            "--store",
            str(store),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"metrics collector: another collector writes {store} (pid {collector_pid(store)})\n"


def test_a_second_collector_on_a_taken_port_exits_with_a_reason(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "console.metrics.statsd",
                "--listen",
                f"127.0.0.1:{port}",
                "--store",
                str(tmp_path / "m.sqlite"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert proc.stderr.count("\n") == 1
