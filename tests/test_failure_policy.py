"""The failure policy and the order of a deploy, fast: the real pipeline, a real trunk and
build, and a fake fleet (support/fake_fleet.py) in place of the hosts. The lab tests
(test_deploy_*.py) stay the proof on real hosts; these run in a second.

Eight hosts in chunks of four: max_failures as a count and as a percent, partial against
failed, a failure after activation, `--only failed`, a rolling activation halted after a
degraded chunk, the assets-first order, a stop honoured only between chunks, and a
deploy whose event log cannot be written.
"""

from __future__ import annotations

import threading

import pytest

from console.config.inventory import Host
from console.core.errors import ConsoleError
from console.core.events import DeployDone, HostDone, Notice
from console.fleet.fanout import Fanout, Later, Stopped
from console.fleet.tree import plan_tree
from console.pipeline.delivery import ASSETS_RSYNC, CODE_RSYNC
from console.pipeline.dry_run import tree_lines
from console.pipeline.plan import DeployRequest
from console.pipeline.run import Pipeline
from console.service import EngineService
from console.session.runs import only_hosts, run_deploy
from console.state.history import History
from support.fake_fleet import HOSTS, USER, FakeFleet, deploy, inventory, shop_trunk
from support.fleet import Recorder
from support.gitrepo import Repo

CHUNK_1, CHUNK_2 = HOSTS[:4], HOSTS[4:]


@pytest.fixture(scope="module")
def trunk(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return shop_trunk(tmp_path_factory.mktemp("policy") / "trunk")


# -- max_failures: a count and a percent; partial against failed ------------------------------


def test_failures_within_a_count_end_partial_and_the_others_are_switched(tmp_path, trunk):
    fleet = FakeFleet()
    fleet.fail[("web02", "sync-code")] = "rsync exited 11: No space left on device"
    done, _ = deploy(inventory(tmp_path, trunk, max_failures=1), fleet)
    assert done.result == "partial", done
    reason = "sync-code: rsync exited 11: No space left on device; partial staging removed"
    assert dict(done.hosts_failed) == {"web02": reason}
    assert sorted(done.hosts_ok) == [h for h in HOSTS if h != "web02"]
    assert "web02" not in fleet.hosts_of("activate")
    assert fleet.current == {h: trunk.head() for h in HOSTS if h != "web02"}


def test_failures_past_a_count_fail_the_deploy_before_any_host_is_switched(tmp_path, trunk):
    fleet = FakeFleet()
    fleet.fail[("web02", "sync-assets")] = fleet.fail[("web07", "sync-assets")] = "rsync exited 12"
    done, _ = deploy(inventory(tmp_path, trunk, max_failures=1), fleet)
    assert done.result == "failed", done
    assert done.message == "2 host(s) failed by sync-assets, over max_failures 1: no host was switched"
    assert done.hosts_ok == ()
    assert sorted(dict(done.hosts_failed)) == ["web02", "web07"]
    assert fleet.hosts_of("activate") == [] and fleet.current == {}
    # a host's code follows its own assets (staged code is not live); the failed ones got none
    assert "web02" not in fleet.hosts_of("sync-code") and "web07" not in fleet.hosts_of("sync-code")


@pytest.mark.parametrize(("failing", "result"), [(2, "partial"), (3, "failed")])
def test_max_failures_as_a_percent_of_the_hosts(tmp_path, trunk, failing, result):
    fleet = FakeFleet()
    for host in HOSTS[:failing]:
        fleet.fail[(host, "sync-code")] = "rsync exited 23"
    done, _ = deploy(inventory(tmp_path, trunk, max_failures="25%"), fleet)  # 25% of 8: 2 hosts
    assert done.result == result, done
    assert len(done.hosts_failed) == failing
    if result == "failed":
        assert done.message == "3 host(s) failed by sync-code, over max_failures 2: no host was switched"
        assert fleet.current == {}


def test_the_percent_is_of_the_hosts_deployed_to(tmp_path, trunk):
    fleet = FakeFleet()
    fleet.fail[("web01", "sync-assets")] = "rsync exited 12"
    inv = inventory(tmp_path, trunk, max_failures="25%")
    done, _ = deploy(inv, fleet, hosts=("web01", "web02", "web03"))  # 25% of 3: none may fail
    assert done.result == "failed" and "over max_failures 0" in done.message, done


def test_a_failure_after_activation_is_named_and_the_others_stay_switched(tmp_path, trunk):
    fleet = FakeFleet()
    fleet.fail[("web03", "restart")] = "restart exited 1: apachectl: config error"
    done, rec = deploy(inventory(tmp_path, trunk), fleet)  # max_failures 0
    assert done.result == "failed", done
    assert dict(done.hosts_failed) == {"web03": "restart: restart exited 1: apachectl: config error"}
    assert done.hosts_ok == ()  # a deploy that failed names no host ok, although they were switched
    assert fleet.current == {h: trunk.head() for h in HOSTS}  # every host, web03 too, was switched
    assert "web03" not in fleet.hosts_of("verify") and len(fleet.hosts_of("verify")) == 7
    assert rec.failures()["web03"].phase == "restart"

    fleet = FakeFleet()
    fleet.fail[("web03", "restart")] = "restart exited 1"
    done, _ = deploy(inventory(tmp_path, trunk, max_failures=1), fleet)
    assert done.result == "partial" and sorted(done.hosts_ok) == [h for h in HOSTS if h != "web03"], done


def test_a_failed_cleanup_fails_no_host(tmp_path, trunk):
    fleet = FakeFleet()
    fleet.fail[("web05", "cleanup")] = "cleanup exited 1"
    done, _ = deploy(inventory(tmp_path, trunk), fleet)
    assert done.result == "ok" and len(done.hosts_ok) == 8, done


def test_one_pipeline_runs_many_times_each_run_with_its_own_failures(tmp_path, trunk):
    fleet = FakeFleet()
    fleet.fail[("web04", "sync-code")] = "rsync exited 11"
    rec = Recorder()
    pipeline = Pipeline(inventory(tmp_path, trunk, max_failures=1), rec, connect=fleet.connect)
    first = pipeline.run(pipeline.plan(DeployRequest(user=USER)))
    assert first.result == "partial"
    fleet.fail.clear()
    second = pipeline.run(pipeline.plan(DeployRequest(user=USER)))
    assert (second.result, second.hosts_failed, len(second.hosts_ok)) == ("ok", (), 8)
    assert sorted(fleet.closed) == sorted(HOSTS * 2)  # every run closes the connections it made


# -- the order ------------------------------------------------------------------------------


def test_assets_first_no_host_activates_before_every_host_has_its_assets(tmp_path, trunk):
    fleet = FakeFleet()
    fleet.fail[("web06", "sync-assets")] = "rsync exited 12: connection unexpectedly closed"
    done, _ = deploy(inventory(tmp_path, trunk, max_failures=1), fleet)
    assert done.result == "partial", done
    last_assets = max(fleet.index(h, "sync-assets", "end") for h in HOSTS)
    first_activate = min(fleet.index(h, "activate", "start") for h in fleet.hosts_of("activate"))
    assert last_assets < first_activate
    for host in fleet.hosts_of("sync-code"):  # each host's code follows its own assets, not the fleet's
        assert fleet.index(host, "sync-assets", "end") < fleet.index(host, "sync-code", "start")
    # staging is one worker per host: chunk 1's code goes out before chunk 2's assets
    assert min(fleet.index(h, "sync-code", "start") for h in CHUNK_1) < min(
        fleet.index(h, "sync-assets", "start") for h in CHUNK_2
    )
    last_code = max(fleet.index(h, "sync-code", "end") for h in fleet.hosts_of("sync-code"))
    assert last_code < first_activate  # staged everywhere before anything switches
    # the host that failed its assets gets no code and is never switched
    assert "web06" not in fleet.hosts_of("sync-code") + fleet.hosts_of("activate")
    assert "web06" not in fleet.current and "web06" not in fleet.staged


def test_rolling_activation_switches_chunk_by_chunk(tmp_path, trunk):
    fleet = FakeFleet()
    done, _ = deploy(inventory(tmp_path, trunk), fleet, rolling=True)
    assert done.result == "ok", done
    verified_1 = max(fleet.index(h, "verify", "end") for h in CHUNK_1)
    assert verified_1 < min(fleet.index(h, "activate", "start") for h in CHUNK_2)
    last_code = max(fleet.index(h, "sync-code", "end") for h in HOSTS)
    assert last_code < min(fleet.index(h, "activate", "start") for h in CHUNK_1)


def test_rolling_activation_halts_after_a_degraded_chunk(tmp_path, trunk):
    fleet = FakeFleet()
    asked: list[list[str]] = []

    def halt_reason() -> str | None:
        asked.append(fleet.hosts_of("verify"))
        return "checkouts/min 41 → 28, -32%, limit -20%"

    done, _ = deploy(inventory(tmp_path, trunk), fleet, rolling=True, halt_reason=halt_reason)
    assert done.result == "failed", done
    assert done.message == "rolling activation halted after chunk 1: checkouts/min 41 → 28, -32%, limit -20%"
    assert [sorted(a) for a in asked] == [CHUNK_1]  # asked once, after the first chunk was verified
    assert sorted(fleet.current) == CHUNK_1  # the second chunk is staged but never switched
    assert sorted(fleet.staged) == HOSTS


def test_rolling_activation_halts_past_max_failures_after_the_chunk(tmp_path, trunk):
    fleet = FakeFleet()
    fleet.fail[("web02", "verify")] = "health exited 1"
    timeouts = {"connect": 1, "command": 5, "sync": 5, "verify": 0.2}  # verify retries until its limit
    done, _ = deploy(inventory(tmp_path, trunk, timeouts=timeouts), fleet, rolling=True)
    assert done.result == "failed", done
    assert done.message == "1 host(s) failed by activate, over max_failures 0: stopped before any further activation"
    assert sorted(fleet.current) == CHUNK_1


# -- a stop request ---------------------------------------------------------------------------


def test_a_stop_is_honoured_between_chunks_never_within_one(tmp_path, trunk):
    fleet, stop = FakeFleet(), threading.Event()
    fleet.on_step = lambda host, phase: stop.set() if (host, phase) == ("web01", "sync-assets") else None
    done, _ = deploy(inventory(tmp_path, trunk), fleet, stop=stop)
    assert done.result == "aborted" and done.message == "stopped by request during sync-assets", done
    assert sorted(fleet.hosts_of("sync-assets")) == CHUNK_1  # the chunk in flight finished on every host
    assert all((h, "sync-code", "end") in fleet.calls for h in CHUNK_1)  # its staging too
    assert sorted(fleet.hosts_of("sync-code")) == CHUNK_1 and fleet.current == {}
    assert done.hosts_ok == () and done.hosts_failed == ()


def test_a_stop_during_a_rolling_chunk_lets_the_chunk_finish_its_switch(tmp_path, trunk):
    fleet, stop = FakeFleet(), threading.Event()
    fleet.on_step = lambda host, phase: stop.set() if (host, phase) == ("web02", "activate") else None
    done, _ = deploy(inventory(tmp_path, trunk), fleet, stop=stop, rolling=True)
    assert done.result == "aborted" and done.message == "stopped by request during activate", done
    assert sorted(fleet.hosts_of("verify")) == CHUNK_1  # switched, restarted and verified: never half-way
    assert sorted(fleet.current) == CHUNK_1


# -- what the steps send is what the dry run shows -----------------------------------------


def test_the_dry_run_shows_the_rsync_options_the_steps_pass(tmp_path, trunk):
    fleet = FakeFleet()
    inv = inventory(tmp_path, trunk)
    pipeline = Pipeline(inv, Recorder(), connect=fleet.connect)
    plan = pipeline.plan(DeployRequest(user=USER))
    text = pipeline.describe(plan)
    assert pipeline.run(plan).result == "ok"
    assert fleet.rsync_options == {"sync-assets": ASSETS_RSYNC, "sync-code": CODE_RSYNC}
    assert f"rsync -a {' '.join(ASSETS_RSYNC)} <build>/assets/ {{address}}:/srv/www/assets/" in text
    assert f"rsync -a {' '.join(CODE_RSYNC)} <build>/code/ {{address}}:/srv/www/releases/{plan.release}/" in text


# -- through the session: --only failed, and a deploy whose event log cannot be written -------


def test_only_failed_redoes_the_hosts_that_failed_until_they_succeed(tmp_path, trunk):
    inv = inventory(tmp_path, trunk, max_failures=2)
    history = History(inv.state_dir)
    with pytest.raises(ConsoleError, match="--only failed: no host failed in the last deploy of policy"):
        only_hosts(inv, history, "failed")
    fleet = FakeFleet()
    fleet.fail[("web02", "sync-code")] = fleet.fail[("web05", "activate")] = "exited 1"
    first = run_deploy(inv, DeployRequest(user=USER), connect=fleet.connect)
    assert first.result == "partial", first
    assert only_hosts(inv, history, "failed") == ("web02", "web05")

    fleet.fail.clear()
    fleet.fail[("web05", "sync-code")] = "exited 1"  # fails again: still to do
    again = run_deploy(inv, DeployRequest(user=USER, hosts=only_hosts(inv, history, "failed")), connect=fleet.connect)
    assert again.result == "partial" and again.hosts_ok == ("web02",), again
    assert only_hosts(inv, history, "failed") == ("web05",)

    fleet.fail.clear()
    last = run_deploy(inv, DeployRequest(user=USER, hosts=("web05",)), connect=fleet.connect)
    assert last.result == "ok", last
    with pytest.raises(ConsoleError, match="no host failed"):
        only_hosts(inv, history, "failed")


def test_a_change_from_the_live_release_keeps_the_staging_order_and_its_failures(tmp_path, trunk):
    """The second deploy goes as the change from the first (one command per host at the
    live release, console/pipeline/delivery.py): a host that failed its assets there gets
    no code, one that failed its code has it removed, and a host that is not at the live
    release (it failed the first deploy) gets rsync; nothing switches before the last host
    is staged."""
    inv = inventory(tmp_path, trunk, max_failures=3)
    fleet = FakeFleet()
    fleet.fail[("web08", "activate")] = "activate exited 1"
    first = run_deploy(inv, DeployRequest(user=USER), connect=fleet.connect)
    assert first.result == "partial" and fleet.by_delta == [], first
    was = trunk.head()

    fleet.fail = {("web02", "sync-assets"): "tar: No space left on device", ("web07", "sync-code"): "cp: cannot link"}
    fleet.calls.clear()
    trunk.commit("A change\n\nReviewed-by: Bob Baker <bob@example.com>", {"shop/app.py": "print('changed')\n"})
    second = run_deploy(inv, DeployRequest(user=USER), connect=fleet.connect)
    assert second.result == "partial", second
    assert dict(second.hosts_failed) == {
        "web02": "sync-assets: tar: No space left on device",
        "web07": "sync-code: cp: cannot link; partial staging removed",
    }
    assert sorted(fleet.by_delta) == [h for h in HOSTS if h not in ("web02", "web07", "web08")]
    assert fleet.rsync_options  # web08, not at the live release, by rsync
    assert "web02" not in fleet.hosts_of("sync-code")
    last_code = max(fleet.index(h, "sync-code", "end") for h in HOSTS if h != "web02")
    assert last_code < min(fleet.index(h, "activate", "start") for h in fleet.hosts_of("activate"))
    assert fleet.current == {h: was if h in ("web02", "web07") else trunk.head() for h in HOSTS}


def test_hosts_a_step_puts_off_come_again_after_the_others_a_chunk_at_a_time():
    """`Later` (the one-command staging of every host at once found a host that needs
    rsync): the fanout comes back to such hosts after all the others, in chunks, and a stop
    request between those chunks is a safe point too."""
    hosts = [Host(f"web{i}", "127.0.0.1") for i in range(1, 7)]
    events, seen, batches = [], set(), []

    def step(host: Host) -> tuple[int, str]:
        if host.name in ("web2", "web4", "web5") and host.name not in seen:
            seen.add(host.name)
            raise Later
        return 0, "ok"

    stop = threading.Event()
    fan = Fanout("d", events.append, chunk_size=2, stop=stop)
    try:
        outcome = fan.run("sync-assets", hosts, step, 5.0, width=100)
        assert sorted(h.name for h in outcome.ok) == [h.name for h in hosts] and outcome.later == []
        done = [e.host for e in events if isinstance(e, HostDone)]
        assert set(done[:3]) == {"web1", "web3", "web6"} and set(done[3:]) == {"web2", "web4", "web5"}

        seen.clear()
        with pytest.raises(Stopped):
            for chunk in fan.chunks("sync-assets", hosts, 100, [outcome]):
                batches.append([h.name for h in chunk])
                fan.run_chunk("sync-assets", chunk, step, 5.0, outcome)
                stop.set()
        assert batches == [[h.name for h in hosts]]  # the put-off hosts' first chunk never started
    finally:
        fan.close()


def test_a_deploy_without_deltas_sends_every_host_by_rsync(tmp_path, trunk):
    inv = inventory(tmp_path, trunk)
    fleet = FakeFleet()
    assert run_deploy(inv, DeployRequest(user=USER), connect=fleet.connect).result == "ok"
    trunk.commit("Another\n\nReviewed-by: Bob Baker <bob@example.com>", {"shop/app.py": "print('again')\n"})
    done = run_deploy(inv, DeployRequest(user=USER, delta=False), connect=fleet.connect)
    assert done.result == "ok" and fleet.by_delta == [], done


def test_only_names_hosts_of_the_inventory(tmp_path, trunk):
    inv = inventory(tmp_path, trunk)
    history = History(inv.state_dir)
    assert only_hosts(inv, history, "web03, web01,") == ("web03", "web01")
    assert only_hosts(inv, history, None) == ()
    with pytest.raises(ConsoleError, match="no host named 'web99'"):
        only_hosts(inv, history, "web01,web99")


def test_a_deploy_whose_event_log_cannot_be_written_says_so_in_its_record(tmp_path, trunk):
    """The event log is on a full disk (/dev/full): the deploy goes on, the other
    subscribers hear why, and the history's record of it names the incomplete log."""
    inv = inventory(tmp_path, trunk)
    log_dir = inv.state_dir / "deploys"

    def full_disk(deploy_id: str) -> None:  # before the first event is written
        (log_dir / f"{deploy_id}.jsonl").symlink_to("/dev/full")

    rec = Recorder()
    done = run_deploy(inv, DeployRequest(user=USER), printer=rec, on_planned=full_disk, connect=FakeFleet().connect)
    try:
        assert done.result == "ok" and len(done.hosts_ok) == 8, done
        assert done.message.startswith("event log incomplete: ") and "No space left on device" in done.message
        notices = [n.message for n in rec.of(Notice)]
        assert any(m.startswith("the event log failed at deploy-started and gets no further events: ") for m in notices)
        assert rec.of(DeployDone)[0].message == done.message  # the printed summary says so too
        record = History(inv.state_dir).get(done.deploy_id)
        assert (record.result, record.message) == ("ok", done.message)
        assert len(record.hosts) == 8
    finally:
        (log_dir / f"{done.deploy_id}.jsonl").unlink()


def test_the_dry_run_shows_who_feeds_whom_with_strategy_tree(tmp_path, trunk):
    inv = inventory(tmp_path, trunk, strategy="tree")
    pipeline = Pipeline(inv, Recorder(), connect=FakeFleet().connect)
    text = pipeline.describe(pipeline.plan(DeployRequest(user=USER)))
    assert "tree: 2 stripes of 4 levels, for a change of more than 256 KiB of new assets" in text
    for line in plan_tree(inv.hosts).describe():
        assert line in text


def test_the_deploy_dialogs_preview_has_the_dry_runs_tree(tmp_path, trunk):
    inv = inventory(tmp_path, trunk, strategy="tree")
    preview = EngineService(inv, USER).preview(trunk.head())
    assert preview.tree == tuple(tree_lines(inv.hosts, inv.tree_port))
    pipeline = Pipeline(inv, Recorder(), connect=FakeFleet().connect)
    text = pipeline.describe(pipeline.plan(DeployRequest(user=USER)))
    assert all(line in text for line in preview.tree)  # one source: dry_run.tree_lines
    assert preview.tree_failed == ()  # no host failed
    assert EngineService(inventory(tmp_path, trunk), USER).preview(trunk.head()).tree == ()  # chunked


def test_strategy_tree_leaves_a_fleet_with_ipv6_addresses_to_rsync(tmp_path, trunk):
    hosts = [{"name": name, "address": "::1", "port": 2200 + i} for i, name in enumerate(HOSTS, 1)]
    fleet, rec = FakeFleet(), Recorder()
    pipeline = Pipeline(inventory(tmp_path, trunk, strategy="tree", hosts=hosts), rec, connect=fleet.connect)
    assert pipeline.run(pipeline.plan(DeployRequest(user=USER))).result == "ok"
    assert any("IPv6 addresses: each host by rsync" in e.message for e in rec.of(Notice))
