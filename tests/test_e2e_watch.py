"""End to end on the demo: the watch after the push. With shoppers running and a baseline
collected, deploying the commit that breaks 30% of checkouts turns the checkouts verdict to
degraded within 60 s of activation; deploying the fix brings it back to ok (issue 4, "Done
means" 3). The verdicts come from the watcher process, through the history."""

from __future__ import annotations

import time

import pytest

from console.core.events import PhaseDone
from console.pipeline.plan import DeployRequest
from console.session.runs import run_deploy
from support.demo_fleet import USER, make_demo_fleet, wait_for

pytestmark = pytest.mark.lab
RATE = 8.0  # visits (and checkouts) per second


@pytest.fixture
def fleet(tmp_path, receiver):
    fleet = make_demo_fleet(tmp_path, 6, notify={"webhooks": [receiver.url]})
    yield fleet
    fleet.close()


def _deploy(fleet, ref: str) -> tuple[str, float]:
    """Deploy `ref`; returns the deploy id and when its activation ended."""
    activated: list[float] = []

    def printer(event):
        if isinstance(event, PhaseDone) and event.phase == "activate":
            activated.append(time.time())

    done = run_deploy(fleet.inventory, DeployRequest(user=USER, ref=ref), printer=printer)
    assert done.result == "ok", (done.message, done.hosts_failed[:2])
    assert activated
    return done.deploy_id, activated[0]


def _checkouts(fleet) -> str:
    """The name of the demo's key metric on the shop.checkouts counter."""
    return next(m.name for m in fleet.inventory.metrics.key if m.query == "shop.checkouts" and m.stat == "rate")


def _first(fleet, deploy_id: str, verdict: str, timeout: float):
    """The first checkouts verdict of `deploy_id` in history that is `verdict`."""
    name = _checkouts(fleet)

    def found():
        return [v for v in fleet.history.verdicts(deploy_id) if v.metric == name and v.verdict == verdict]

    return wait_for(found, timeout, f"a {verdict} {name!r} verdict of {deploy_id}", every=0.5)[0]


def test_the_breaking_commit_is_degraded_within_a_minute_and_the_fix_is_ok(fleet, receiver):
    trunk = fleet.trunk
    first = fleet.deploy(trunk.initial, override="first install of the demo shop")
    assert first.result == "ok", (first.message, first.hosts_failed[:2])
    shop = fleet.traffic(rate=RATE)
    time.sleep(fleet.inventory.metrics.baseline + 2)  # a full baseline of steady shopping

    before = shop.summary()
    broken, activated = _deploy(fleet, trunk.breaking)  # copy..breaking: all reviewed
    degraded = _first(fleet, broken, "degraded", 75)
    latency = degraded.ts - activated
    seen = [
        (round(v.ts - activated, 1), v.verdict, v.summary)
        for v in fleet.history.verdicts(broken)
        if v.metric == _checkouts(fleet)
    ]
    print(f"breaking: degraded {latency:.1f} s after activation: {degraded.summary}")
    assert latency <= 60, seen
    assert degraded.change is not None and degraded.change <= -0.2, degraded
    after = shop.summary()
    failed = after.checkouts_failed - before.checkouts_failed
    assert before.checkouts_failed == 0 and failed >= 0.15 * (failed + after.checkouts_ok - before.checkouts_ok)

    fixed, activated = _deploy(fleet, trunk.fix)
    ok = _first(fleet, fixed, "ok", 75)
    print(f"fix: ok {ok.ts - activated:.1f} s after activation: {ok.summary}")
    assert ok.ts - activated <= 60
    # back to the rate from before the breakage, not just better than the broken baseline
    assert ok.current >= 0.85 * degraded.baseline, (ok.summary, degraded.summary)
    # the superseded watch of the breaking deploy ended with a final verdict
    assert any(v.final for v in fleet.history.verdicts(broken) if v.metric == _checkouts(fleet))
    # ... and the watcher process announced it
    name = _checkouts(fleet)
    posts = wait_for(
        lambda: [
            p
            for p in receiver.bodies
            if p["event"] == "watch-verdict" and p["deploy_id"] == broken and p["metric"] == name
        ],
        10,
        "the final verdict's webhook",
    )
    assert posts[0]["verdict"] == "degraded" and posts[0]["final"], posts[0]
    assert posts[0]["summary"].startswith(f"e2e: {name} degraded after {USER}'s deploy of {trunk.breaking[:7]}: ")
    # nothing failed but the checkouts the breaking commit broke
    summary = shop.summary()
    assert summary.failed == 0 and summary.asset_404s == 0, summary.samples
