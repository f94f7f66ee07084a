"""End to end on the demo: the reviewed-change queue, the refusals by name, and an override
recorded in history and in the webhook payload (issue 4, "Done means" 1)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from console.core.errors import ConsoleError
from console.core.events import DeployDone
from console.lab import state as labstate
from support.demo_fleet import ROOT, USER, make_demo_fleet, wait_for

pytestmark = pytest.mark.lab

#: After `initial`, every role of the demo trunk: (approved, DDL file or None).
EXPECTED = {
    "copy": (True, None),
    "style": (True, None),
    "script": (True, None),
    "breaking": (True, None),
    "fix": (True, None),
    "unreviewed": (False, None),
    "ddl": (True, "migrations/0002_add_gift_wrap.sql"),
}


@pytest.fixture
def fleet(tmp_path, receiver):
    fleet = make_demo_fleet(tmp_path, 4, notify={"webhooks": [receiver.url]})
    yield fleet
    fleet.close()


def test_queue_refusals_and_an_override_on_the_demo_trunk(fleet, receiver):
    trunk = fleet.trunk
    first = fleet.deploy(trunk.initial, override="first install of the demo shop")
    assert first.result == "ok", first

    # invoke queue --json, as a person runs it
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "queue", "-i", str(fleet.inventory.path), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["live"] == trunk.initial
    queue = answer["queue"]
    assert [c["sha"] for c in queue] == [trunk.commits[role] for role in EXPECTED]
    for change, (role, (approved, ddl_file)) in zip(queue, EXPECTED.items(), strict=False):
        assert change["approved"] is approved, (role, change)
        assert [h["file"] for h in change["ddl"]] == ([ddl_file] if ddl_file else []), (role, change)
    ddl_hit = queue[-1]["ddl"][0]
    assert ddl_hit["line"] == 2 and "ALTER TABLE" in ddl_hit["text"], ddl_hit

    # a range with the unreviewed commit, and one with the DDL commit too, are refused by name
    short = {role: sha[:7] for role, sha in trunk.commits.items()}
    with pytest.raises(ConsoleError) as refused:
        fleet.deploy(trunk.unreviewed)
    text = str(refused.value)
    assert f"{short['unreviewed']} Show how many products the shop has: not reviewed" in text
    assert short["ddl"] not in text and short["fix"] not in text
    with pytest.raises(ConsoleError) as refused:
        fleet.deploy(trunk.ddl)
    text = str(refused.value)
    assert f"{short['unreviewed']} Show how many products the shop has: not reviewed" in text
    assert f"{short['ddl']} Add gift wrap to orders: DDL: migrations/0002_add_gift_wrap.sql:2 ALTER TABLE" in text
    assert fleet.history.live_revision() == trunk.initial  # nothing was deployed
    assert len(fleet.history.deploys()) == 1

    # the override deploys, and its reason is in history and in the webhooks
    reason = "gift wrap column approved by the DBA, ticket OPS-42"
    done = fleet.deploy(trunk.ddl, override=reason)
    record = fleet.history.get(done.deploy_id)
    assert record.override == reason
    assert record.user == USER and record.commits == 7
    wait_for(
        lambda: [p for p in receiver.bodies if p["deploy_id"] == done.deploy_id and p["event"] == DeployDone.kind],
        10,
        "the deploy-done webhook",
    )
    started = [p for p in receiver.bodies if p["deploy_id"] == done.deploy_id and p["event"] == "deploy-started"]
    assert len(started) == 1 and started[0]["override"] == reason
    assert f"(override: {reason})" in started[0]["summary"]
    assert started[0]["summary"].startswith(f"e2e: {USER} is deploying {short['initial']}..{short['ddl']} (7 commits)")
    assert record.result == done.result and record.revision == trunk.ddl


def test_the_whole_demo_trunk_deploys_with_an_override_and_serves(fleet):
    """The head of the demo trunk (through `unreviewed` and `ddl`) must be a shop that starts."""
    trunk = fleet.trunk
    done = fleet.deploy(trunk.ddl, override="the whole demo trunk at once")
    assert done.result == "ok", (done.message, done.hosts_failed[:1])
    assert fleet.history.live_revision() == trunk.ddl


def test_hosts_run_the_shop_from_the_bytecode_the_build_compiled(fleet):
    """The demo's build.command compiles the shop once on the deploy host: after a reload
    (its check and the new worker both import the shop) every module's .pyc on a host is
    still the build's, hash-checked (PEP 552 flags 0b11), not one the host wrote itself."""
    done = fleet.deploy(fleet.trunk.initial, override="first install of the demo shop")
    assert done.result == "ok", (done.message, done.hosts_failed[:1])
    st = labstate.load(fleet.lab.name)
    for name in [h.name for h in fleet.inventory.hosts[:2]]:
        shop = st.host(name).www / "current" / "shop"
        modules = sorted(p.stem for p in shop.glob("*.py"))
        cached = {p.name.split(".")[0]: p for p in (shop / "__pycache__").glob("*.pyc")}
        assert sorted(cached) == modules, name
        flags = {m: int.from_bytes(p.read_bytes()[4:8], "little") for m, p in cached.items()}
        assert set(flags.values()) == {0b11}, (name, flags)
