"""Shoppers against two real local shops: a page from one host, its assets from the other."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit

from console.core.errors import ConsoleError
from console.demo.layout import install_release, kill_shop, shop_ctl, shop_source
from console.demo.traffic import Traffic, check_address, host_urls
from console.tasks.demo import ns, traffic

REV_1 = "1" * 40
REV_2 = "2" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fleet(tmp_path):
    """Two shops on 127.0.0.1; `fleet(new_on_a=True)` makes host a serve a release whose
    CSS host b does not have (a push that was not assets-first)."""
    started: list[Path] = []

    def make(new_on_a: bool) -> list[str]:
        new_src = tmp_path / "src-new"
        shutil.copytree(shop_source(), new_src, ignore=shutil.ignore_patterns("__pycache__"))
        with open(new_src / "assets/css/shop.css", "a") as f:
            f.write("footer { color: gray; }\n")
        urls = []
        for name in ("a", "b"):
            root, port = tmp_path / name, free_port()
            install_release(shop_source(), root, "r1", REV_1)
            if name == "a" and new_on_a:
                install_release(new_src, root, "r2", REV_2)
            started.append(root)
            done = shop_ctl(root, "graceful", bind=f"127.0.0.1:{port}")
            assert done.returncode == 0, done.stderr
            urls.append(f"http://127.0.0.1:{port}")
        return urls

    yield make
    for root in started:
        kill_shop(root)


def test_a_page_whose_assets_another_host_lacks_counts_asset_404s(fleet):
    urls = fleet(new_on_a=True)
    summary = Traffic(urls, rate=60, shoppers=6, seed=7).run(1.5)
    assert summary.visits >= 40
    assert summary.asset_404s > 0
    assert summary.failed == 0
    assert summary.checkouts_ok == summary.visits and summary.checkouts_failed == 0
    css_404 = [s for s in summary.samples if s.startswith("asset 404:")]
    assert css_404 and all(urls[1] in s and "/assets/css/shop." in s and f"page from {urls[0]}" in s for s in css_404)
    # each visit: one page, its three (shop page) or four (product page) assets, one checkout
    assert summary.pages == summary.visits
    assert 3 * summary.pages <= summary.assets <= 4 * summary.pages
    assert summary.requests == summary.pages + summary.assets + summary.visits
    assert "asset 404s" in summary.line()


def test_the_same_release_everywhere_gives_no_404s_or_failures(fleet):
    urls = fleet(new_on_a=False)
    shop = Traffic(urls, rate=40, shoppers=4, seed=1)
    summary = shop.run(1.0)
    assert 20 <= summary.visits <= 45  # the rate is kept (40 visits/s)
    assert summary.asset_404s == 0 and summary.failed == 0 and summary.checkouts_failed == 0


def test_a_dead_host_counts_failed_requests(fleet):
    urls = fleet(new_on_a=False)
    dead = f"http://127.0.0.1:{free_port()}"
    summary = Traffic([urls[0], dead], rate=30, shoppers=3, seed=2).run(0.7)
    assert summary.failed > 0
    assert any("ConnectionRefusedError" in s for s in summary.samples)


def test_traffic_goes_only_to_loopback_and_the_lab_network():
    check_address("127.0.0.1")
    check_address("198.19.255.254")
    for address in ["8.8.8.8", "10.0.0.1", "198.20.0.1"]:
        with pytest.raises(ConsoleError, match="expected a loopback or lab"):
            check_address(address)
    with pytest.raises(ConsoleError, match="expected a loopback or lab"):
        Traffic(["http://127.0.0.1:8080", "http://8.8.8.8:80"])
    with pytest.raises(ConsoleError, match="expected a URL like"):
        Traffic(["ftp://127.0.0.1/"])


def write_inventory(tmp_path: Path, ports: list[int]) -> Path:
    (tmp_path / "key").write_text("not a real key\n")
    (tmp_path / "key").chmod(0o600)
    (tmp_path / "known_hosts").write_text("")
    hosts = "\n".join(  # one ssh port each: two names for one host and deploy path are refused
        f"  - name: web{i}\n    address: 127.0.0.1\n    port: {2200 + i}\n    vars: {{http_port: {port}}}"
        for i, port in enumerate(ports)
    )
    path = tmp_path / "lab.yaml"
    path.write_text(
        "environment: lab\nrepo: trunk.git\nbranch: main\n"
        "ssh: {user: deploy, key: key, known_hosts: known_hosts}\n"
        f"hosts:\n{hosts}\n  - name: web9\n    address: 127.0.0.1\n"
    )
    return path


def test_host_urls_use_http_port_with_8080_as_default(tmp_path):
    from console.config.inventory import load_inventory

    inv = load_inventory(write_inventory(tmp_path, [9001, 9002]))
    assert host_urls(inv.hosts) == ["http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:8080"]


def test_the_invoke_task_prints_a_summary(fleet, tmp_path, capsys):
    urls = fleet(new_on_a=True)
    ports = [int(u.rsplit(":", 1)[1]) for u in urls]
    inv = write_inventory(tmp_path, ports).read_text().replace("  - name: web9\n    address: 127.0.0.1\n", "")
    (tmp_path / "lab.yaml").write_text(inv)
    assert "traffic" in ns.task_names and ns.name == "demo"
    traffic(Context(), inventory=str(tmp_path / "lab.yaml"), rate=40, duration=1)
    out = capsys.readouterr().out
    assert "traffic: 2 hosts of lab" in out
    assert "asset 404: " in out and "0 failed requests" in out


def test_the_invoke_task_exits_with_one_line_on_a_bad_inventory(tmp_path):
    with pytest.raises(Exit) as caught:
        traffic(Context(), inventory=str(tmp_path / "missing.yaml"))
    assert caught.value.code == 1 and "missing.yaml" in str(caught.value.message)
