"""End to end on the demo, its shop served by gunicorn on every lab host: 25 back-to-back
deploys to a 20-host lab under steady shoppers give zero asset 404s and zero failed requests;
the same push with the assets-first order turned off gives asset 404s, so the shoppers can
catch the fault (issue 4, "Done means" 2); a request in flight during a deploy's graceful
reload is answered by the old release (issue 14)."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from console.core.events import Event, PhaseDone, PhaseStarted
from console.metrics.store import StoreReader, store_path
from support.demo_fleet import make_demo_fleet, wait_for

pytestmark = pytest.mark.lab
HOSTS = 20
DEPLOYS = 25


@pytest.fixture
def fleet(tmp_path, request):
    fleet = make_demo_fleet(tmp_path, HOSTS, chunk_size=request.param)
    yield fleet
    fleet.close()


def _deploys(fleet, shop, count: int, until_404: bool = False, **request) -> list[str]:
    """`count` deploys (or fewer: until the shoppers saw an asset 404), each shipping a new
    shop.css (new hashed asset names); returns a line per deploy."""
    lines = []
    for n in range(count):
        if until_404 and shop.summary().asset_404s:
            break
        commit = fleet.css_change(n)
        t0 = time.monotonic()
        done = fleet.deploy(commit, **request)
        assert done.result == "ok", (n, done.message, done.hosts_failed[:2])
        assert fleet.history.live_revision() == commit
        lines.append(f"deploy {n + 1}: {time.monotonic() - t0:.1f} s, asset 404s so far {shop.summary().asset_404s}")
    return lines


@pytest.mark.parametrize("fleet", [10], indirect=True)
def test_25_deploys_under_traffic_give_no_asset_404s_and_no_failed_requests(fleet):
    first = fleet.deploy(fleet.deployable_head(), override="first install of the demo shop")
    assert first.result == "ok", (first.message, first.hosts_failed[:2])
    shop = fleet.traffic(rate=12)
    t0 = time.monotonic()
    lines = _deploys(fleet, shop, DEPLOYS)
    took = time.monotonic() - t0
    time.sleep(1.0)  # the visits that started during the last deploy finish
    shop.stop()
    summary = shop.wait()
    print(f"{DEPLOYS} deploys in {took:.1f} s; shoppers: {summary.line()}", *lines, sep="\n")
    assert summary.visits >= 12 * took * 0.7, summary.line()  # the shoppers really shopped throughout
    assert summary.asset_404s == 0, summary.samples
    assert summary.failed == 0, summary.samples
    assert summary.checkouts_failed == 0, summary.samples
    # every deploy's start and end went to StatsD as a marker; the watcher of each deploy
    # stopped when the next one started (only the last one still watches)
    reader = StoreReader(store_path(fleet.inventory))
    env = fleet.inventory.environment
    wait_for(
        lambda: sum(r.count for r in reader.rows(f"deploys.{env}.end", "c", 0, 2**40)) == DEPLOYS + 1,
        5,
        "the last deploy marker",
    )
    for label in ("start", "end"):
        assert sum(r.count for r in reader.rows(f"deploys.{env}.{label}", "c", 0, 2**40)) == DEPLOYS + 1, label
    assert sum(r.count for r in reader.rows(f"deploys.{env}", "c", 0, 2**40)) == 2 * (DEPLOYS + 1)
    wait_for(lambda: len(fleet.watchers()) <= 1, 10, "the superseded watchers to end")


@pytest.mark.parametrize("fleet", [4], indirect=True)
def test_with_assets_first_off_the_same_push_gives_asset_404s(fleet):
    """The control: each chunk of 4 hosts gets assets, code and the switch on its own, so pages
    from switched hosts ask hosts of later chunks for CSS they do not have yet."""
    first = fleet.deploy(fleet.deployable_head(), override="first install of the demo shop")
    assert first.result == "ok", (first.message, first.hosts_failed[:2])
    shop = fleet.traffic(rate=20)
    lines = _deploys(fleet, shop, 4, until_404=True, assets_first=False)
    time.sleep(1.0)
    shop.stop()
    summary = shop.wait()
    print(f"control: {summary.line()}", *lines, sep="\n")
    assert summary.asset_404s > 0, summary.line()
    assert all("asset 404" in s for s in summary.samples), summary.samples


def test_a_request_in_flight_during_the_reload_completes_with_the_old_release(tmp_path):
    """A request that takes 2 s, sent when `restart` begins (the new release is already linked
    as `current`): gunicorn's graceful reload starts new workers on the new release while the
    old worker finishes that request with the old release's answer."""
    fleet = make_demo_fleet(tmp_path, 2)
    try:
        first = fleet.deploy(fleet.deployable_head(), override="first install of the demo shop")
        assert first.result == "ok", (first.message, first.hosts_failed[:2])
        old = fleet.history.live_revision()
        host = fleet.inventory.hosts[0]
        url = f"http://{host.address}:{host.vars['http_port']}"
        answer: dict[str, object] = {}

        def slow() -> None:
            with urllib.request.urlopen(f"{url}/slow?seconds=2", timeout=10) as response:
                answer.update(status=response.status, body=response.read().decode().strip())
            answer["at"] = time.monotonic()

        in_flight = threading.Thread(target=slow)

        def on_event(event: Event) -> None:
            if isinstance(event, PhaseStarted) and event.phase == "restart":
                in_flight.start()
                time.sleep(0.3)  # the old worker has taken it and sleeps in it
            elif isinstance(event, PhaseDone) and event.phase == "restart":
                answer["restarted"] = time.monotonic()

        commit = fleet.css_change(0)
        done = fleet.deploy(commit, printer=on_event)
        in_flight.join()
        assert done.result == "ok", (done.message, done.hosts_failed[:2])
        assert urllib.request.urlopen(f"{url}/health", timeout=5).read().decode().strip() == commit
        assert (answer["status"], answer["body"]) == (200, old)
        assert answer["restarted"] < answer["at"]  # the reload neither waited for it nor cut it short
    finally:
        fleet.close()
