"""Deploy markers: the `deploys.<environment>` counter arrives as a StatsD datagram."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path

from console.config.inventory import Host, Inventory, Metrics, SSHSettings
from console.metrics.markers import marker_lines, send_marker
from console.metrics.statsd.protocol import Sample, parse_packet


def _inventory(tmp_path: Path, address: tuple[str, int], environment: str = "lab") -> Inventory:
    return Inventory(
        path=tmp_path / "lab.yaml",
        environment=environment,
        repo="/srv/repo",
        branch="main",
        deploy_path="/srv/www",
        ssh=SSHSettings("deploy", tmp_path / "key", tmp_path / "known_hosts"),
        hosts=(Host("web01", "127.0.0.1"),),
        state_dir=tmp_path / "state",
        metrics=Metrics(statsd=address),
    )


def test_send_marker_is_received_by_a_udp_socket(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2)
        inventory = _inventory(tmp_path, receiver.getsockname())
        send_marker(inventory, "20260604-101200-ab12cd3 start")
        send_marker(inventory, "")
        send_marker(inventory, "20260604-101200-ab12cd3")
        first, second, third = receiver.recv(4096), receiver.recv(4096), receiver.recv(4096)
    assert first == b"deploys.lab:1|c\ndeploys.lab.start:1|c"
    assert second == third == b"deploys.lab:1|c"
    assert parse_packet(first)[0] == Sample("deploys.lab", "c", 1.0)


def test_marker_names_are_made_safe_for_statsd():
    assert marker_lines("prod eu", "d-1 End") == b"deploys.prod_eu:1|c\ndeploys.prod_eu.end:1|c"
    assert marker_lines("lab", "d-1 ab12cd3") == b"deploys.lab:1|c"
    assert marker_lines("lab", "d-1 é") == b"deploys.lab:1|c"


def test_send_marker_never_blocks_or_raises(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    nobody = _inventory(tmp_path, ("127.0.0.1", closed_port))
    t0 = time.monotonic()
    for _ in range(50):
        send_marker(nobody, "start")  # nobody listening: ICMP refusals are swallowed
    send_marker(dataclasses.replace(nobody, metrics=Metrics(statsd=("not a host name", 8125))), "x")
    send_marker(dataclasses.replace(nobody, metrics=Metrics(statsd=("127.0.0.1", 0))), "x")
    assert time.monotonic() - t0 < 1
