"""The deploy pipeline on a 20-host lab: releases, manifests, cleanup, the assets-first
order (proven from file change times on the hosts), dry run, switch and the invoke CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from console.fleet import remote
from console.pipeline.plan import DeployRequest
from console.pipeline.run import Pipeline
from console.session.hold import Session
from console.session.runs import run_step, run_switch
from console.state.history import History
from support.fleet import DEPLOY_PATH, USER, Fleet, Recorder, deploy, make_fleet

pytestmark = pytest.mark.lab
HOSTS = 20
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    return make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("deploy-pipeline"))


def survey(fleet: Fleet, host: str) -> dict:
    """current, its REVISION, every release with its REVISION and manifest, every asset file."""
    script = f"""cd {DEPLOY_PATH}
echo "current $(readlink current)"
for r in releases/*; do echo "release ${{r#releases/}} $(cat $r/REVISION)"; echo "manifest ${{r#releases/}} $(tr -d '\\n' < $r/manifest.json)"; done
cd assets && find . -type f | sed 's|^\\./|asset |'"""
    out = {"releases": {}, "manifests": {}, "assets": set()}
    for line in fleet.sh(host, script).splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "current":
            out["current"] = rest.removeprefix("releases/")
        elif kind == "release":
            name, _, revision = rest.partition(" ")
            out["releases"][name] = revision
        elif kind == "manifest":
            name, _, text = rest.partition(" ")
            out["manifests"][name] = json.loads(text)
        elif kind == "asset":
            out["assets"].add(rest)
    return out


def referenced(manifest: dict[str, str]) -> set[str]:
    return {url.removeprefix("/assets/") for url in manifest.values()}


def test_deploy_to_20_hosts_then_a_second_keeps_the_previous_release(fleet):
    inv = fleet.inventory()
    first = deploy(inv, ref=fleet.trunk.initial)
    assert first.result == "ok", first
    assert sorted(first.hosts_ok) == fleet.hosts
    release_1 = first.deploy_id

    second = deploy(inv, ref=fleet.trunk.fix, override=None)  # copy..fix: reviewed, no DDL
    assert second.result == "ok", second
    release_2 = second.deploy_id
    assert release_2 != release_1
    for host in fleet.hosts:
        assert fleet.revision(host) == fleet.trunk.fix, host
        s = survey(fleet, host)
        assert s["current"] == release_2
        assert s["releases"][release_2] == fleet.trunk.fix, host
        # the previous release is intact: its dir, REVISION, manifest and every asset it names
        assert s["releases"][release_1] == fleet.trunk.initial, host
        for release in (release_1, release_2):
            manifest = s["manifests"][release]
            assert manifest and referenced(manifest) <= s["assets"], (host, release)
    # the style and script commits changed asset names: old and new versions live side by side
    s = survey(fleet, fleet.hosts[0])
    old, new = s["manifests"][release_1], s["manifests"][release_2]
    assert old["css/shop.css"] != new["css/shop.css"] and old["js/shop.js"] != new["js/shop.js"]


def test_keep_releases_cleanup_never_removes_current_or_previous(fleet):
    few = fleet.hosts[:5]  # seven deploys: on a part of the fleet, to keep the test quick
    inv = fleet.inventory(keep_releases=5, only=len(few))
    done = deploy(inv)  # the tip (an unreviewed and a DDL commit: the fixture's override)
    assert done.result == "ok", done
    releases = []
    for i in range(7):
        fleet.change(f"keep{i}")
        done = deploy(inv, override=None)
        assert done.result == "ok", done
        releases.append(done.deploy_id)
    assert releases == sorted(set(releases))  # ids sort by time, also less than a second apart
    for host in few:
        s = survey(fleet, host)
        assert sorted(s["releases"]) == releases[-5:], host
        assert s["current"] == releases[-1]
        # the assets on a host are exactly those its kept releases name
        assert s["assets"] == set().union(*(referenced(m) for m in s["manifests"].values())), host

    # After a switch back to an older release, a cleanup keeping 2 still keeps that
    # release (current) and the one before it, besides the newest two.
    back = run_switch(inv, releases[-4], USER)
    assert back.result == "ok", back
    cleaned = run_step(fleet.inventory(keep_releases=2, only=len(few)), "cleanup", USER)
    assert cleaned.result == "ok", cleaned
    for host in few:
        s = survey(fleet, host)
        assert s["current"] == releases[-4]
        assert sorted(s["releases"]) == [releases[-5], releases[-4], releases[-2], releases[-1]], host
        assert s["assets"] == set().union(*(referenced(m) for m in s["manifests"].values()))
    forward = run_switch(inv, releases[-1], USER)
    assert forward.result == "ok", forward


def arrivals(fleet: Fleet, host: str, release: str, assets: set[str]) -> tuple[list[float], list[float], float]:
    """Change times (ctime: rsync -a keeps mtimes) of the release's files, of `assets` and
    of the `current` symlink (made and renamed into place by activate) on a host."""
    names = " ".join(f"assets/{a}" for a in sorted(assets))
    out = fleet.sh(
        host,
        f"cd {DEPLOY_PATH} && find releases/{release} -type f -exec stat -c 'code %.9Z' {{}} + "
        f"&& stat -c 'asset %.9Z' {names} && stat -c 'live %.9Z' current",
    )
    times = {
        kind: [float(line.split()[1]) for line in out.splitlines() if line.startswith(kind + " ")]
        for kind in ("code", "asset", "live")
    }
    assert len(times["asset"]) == len(assets) and times["code"] and len(times["live"]) == 1
    return times["code"], times["asset"], times["live"][0]


def new_asset(fleet: Fleet, recorder: Recorder, label: str) -> set[str]:
    """The hashed name of the asset the change `label` added (see Fleet.change)."""
    manifest = json.loads((fleet.state_dir / "builds" / recorder.release / "code" / "manifest.json").read_text())
    return referenced({"new": manifest[f"css/{label}.css"]})


def test_assets_first_no_host_switches_before_the_last_asset_arrives_anywhere(fleet):
    """The assets-first order: every host has the new assets before any host switches (a
    host's code follows its own assets at once: staged code is not live code)."""
    inv = fleet.inventory(keep_releases=50)  # cleanup must not touch the inodes measured
    assert len(Pipeline(inv, lambda e: None).plan(DeployRequest(user=USER)).chunks) >= 2

    fleet.change("order-safe")
    rec = Recorder()
    done = deploy(inv, recorder=rec)
    assert done.result == "ok", done
    fresh = new_asset(fleet, rec, "order-safe")
    seen = {host: arrivals(fleet, host, rec.release, fresh) for host in fleet.hosts}
    last_asset = max(max(asset) for _, asset, _ in seen.values())
    first_live = min(live for _, _, live in seen.values())
    assert first_live > last_asset, f"a host switched {last_asset - first_live:.3f} s before the last asset arrived"
    for host, (code, asset, _) in seen.items():
        # and no code on a host before its own assets (the same clock tick at most: a host at
        # the live release gets both from one command, the file times' clock ticks in ms)
        assert min(code) >= max(asset), host

    # The control: without the assets-first order (chunk by chunk), the first chunk's hosts
    # switch before the assets reach the hosts of the last chunk.
    fleet.change("order-naive")
    rec = Recorder()
    done = deploy(inv, override=None, recorder=rec, assets_first=False)
    assert done.result == "ok", done
    fresh = new_asset(fleet, rec, "order-naive")
    seen = {host: arrivals(fleet, host, rec.release, fresh) for host in fleet.hosts}
    assert min(live for _, _, live in seen.values()) < max(max(asset) for _, asset, _ in seen.values())


def test_dry_run_prints_the_plan_and_changes_nothing(fleet):
    inv = fleet.inventory(chunk_size=7)
    watched = [fleet.hosts[0], fleet.hosts[-1]]
    before = {h: fleet.listing(h) for h in watched}
    fleet.change("dry")
    session = Session(inv)
    pipeline = session.pipeline()
    plan = pipeline.plan(DeployRequest(user=USER))
    text = pipeline.describe(plan)
    for phase in ("update", "build", "sync-assets", "sync-code", "activate", "restart", "verify", "cleanup"):
        assert f"    {phase}" in text, phase
    assert "chunk 1: web001, web002, web003, web004, web005, web006, web007" in text
    assert "chunk 3: web015, web016, web017, web018, web019, web020" in text
    assert remote.activate(DEPLOY_PATH, plan.release, USER) in text
    assert f"{{address}}:{DEPLOY_PATH}/releases/{plan.release}/" in text and "--link-dest" in text
    assert f"{{address}}:{DEPLOY_PATH}/assets/" in text
    assert "test -f /srv/www/current/REVISION" in text and "cat /srv/www/current/REVISION" in text
    assert {h: fleet.listing(h) for h in watched} == before


def test_switch_back_is_instant_and_recorded(fleet):
    inv = fleet.inventory()
    fleet.change("switch-a")
    a = deploy(inv)
    fleet.change("switch-b")
    b = deploy(inv, override=None)
    assert a.result == b.result == "ok"
    back = run_switch(inv, None, USER)  # default: the release before the live one
    assert back.result == "ok", back
    assert back.seconds < 5, back.seconds
    target = History(fleet.state_dir).get(a.deploy_id).revision
    for host in fleet.hosts:
        assert fleet.current(host) == a.deploy_id
        assert fleet.revision(host) == target
    record = History(fleet.state_dir).get(back.deploy_id)
    assert (record.action, record.result, record.release, record.user) == ("switch", "ok", a.deploy_id, USER)
    assert len(record.hosts) == HOSTS
    assert History(fleet.state_dir).live_revision() == target


def invoke(inv_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv/bin/invoke"), "deploy", "-i", str(inv_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "DEPLOY_USER": USER},
    )


def test_invoke_deploy_cli(fleet):
    inv = fleet.inventory()
    sha = fleet.change("cli")
    ok = invoke(inv.path, "--ref", sha, "--override", "test: whatever the module deployed before")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "done: OK" in ok.stdout
    assert {fleet.revision(h) for h in fleet.hosts[:2]} == {sha}

    watched = [fleet.hosts[0], fleet.hosts[-1]]
    before = {h: fleet.listing(h) for h in watched}
    fleet.change("cli-dry")
    dry = invoke(inv.path, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "(dry run: nothing changes)" in dry.stdout and "chunk 2: web011" in dry.stdout
    assert {h: fleet.listing(h) for h in watched} == before

    bad = invoke(inv.path, "--ref", "no-such-ref")
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown ref 'no-such-ref'"), bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    assert {fleet.revision(h) for h in fleet.hosts[:2]} == {sha}
