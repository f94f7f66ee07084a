"""Refs mean what they say, fixing forward never dead-ends, and a failed run ends: the real
pipeline, real git and a real build over the fake fleet (support/fake_fleet.py).

A branch and a tag of one name are refused naming both; a commit off the branch needs an
override; an older trunk commit says to use `invoke switch`; a live revision that is not
on trunk (a hotfix from a side branch) is named as taken off the fleet, and the deploy of
trunk goes out with an override. A switch asks every host for the release before it
switches any. A run that fails in its build ends `failed` and leaves no build behind, and
everything it leaves in the state directory is private. A checkout that a bad repository
URL broke heals once the URL is right.
"""

from __future__ import annotations

import errno
import shutil
import stat
import subprocess

import pytest

from console.core.errors import ConsoleError
from console.core.events import DeployStarted, HostFailed
from console.pipeline.plan import DeployRequest
from console.pipeline.run import Pipeline
from console.session.runs import run_deploy
from console.session.spawn import runs_dir, spawn
from console.state.history import History
from console.trunk.checkout import Checkout
from support.fake_fleet import HOSTS, REVIEWED, USER, FakeFleet, deploy, inventory, shop_trunk
from support.fleet import Recorder
from support.gitrepo import Repo


@pytest.fixture
def trunk(tmp_path):
    """main: c1 - c2 - c3; a side branch `hotfix` off c2 with h1; each commit reviewed."""
    repo = shop_trunk(tmp_path / "trunk")
    repo.commit("Add checkout" + REVIEWED, {"shop/checkout.py": "pass\n"})
    repo.git("branch", "hotfix")
    repo.commit("Faster pages" + REVIEWED, {"shop/app.py": "print('fast shop')\n"})
    repo.git("checkout", "-q", "hotfix")
    repo.commit("Hotfix the cart" + REVIEWED, {"shop/cart.py": "pass\n"})
    repo.git("checkout", "-q", "main")
    return repo


def sha(repo: Repo, ref: str) -> str:
    return repo.git("rev-parse", ref).strip()


def refusal(inv, fleet, **request) -> str:
    with pytest.raises(ConsoleError) as caught:
        deploy(inv, fleet, **request)
    assert fleet.current == {}, "a refused deploy touched a host"
    return str(caught.value)


def test_a_name_that_is_a_branch_and_a_tag_of_different_commits_is_refused_naming_both(tmp_path, trunk):
    trunk.git("tag", "main", "hotfix")  # a tag `main` on the side commit
    inv, fleet = inventory(tmp_path, trunk), FakeFleet()
    message = refusal(inv, fleet, ref="main")
    tip, side = sha(trunk, "refs/heads/main")[:7], sha(trunk, "hotfix")[:7]
    assert message == (
        f"ref 'main' is ambiguous: branch main is {tip} and tag main is {side}; expected refs/heads/main or refs/tags/main"
    )
    done, _ = deploy(inv, fleet, ref="refs/heads/main")
    assert done.result == "ok" and set(fleet.current.values()) == {sha(trunk, "refs/heads/main")}


def test_a_commit_not_on_the_branch_is_refused_unless_overridden(tmp_path, trunk):
    inv, fleet = inventory(tmp_path, trunk), FakeFleet()
    side = sha(trunk, "hotfix")
    message = refusal(inv, fleet, ref="hotfix")
    assert message.startswith(f"refusing to deploy {side[:7]}: it is not on branch main; pass --override"), message
    done, rec = deploy(inv, fleet, ref="hotfix", override="cart hotfix, INC-12")
    assert done.result == "ok" and set(fleet.current.values()) == {side}
    assert rec.of(DeployStarted)[0].override == "cart hotfix, INC-12"  # recorded with the deploy


def test_an_older_trunk_commit_says_to_switch_back_or_is_deployed_with_an_override(tmp_path, trunk):
    inv, fleet = inventory(tmp_path, trunk), FakeFleet()
    live, older = sha(trunk, "main"), sha(trunk, "main~1")
    message = refusal(inv, fleet, ref=older, live_revision=live)
    assert message.splitlines()[0] == (
        f"refusing to deploy {older[:7]}: it is older than live {live[:7]} and takes 1 newer commit(s) off the fleet; "
        'to go back use invoke switch; pass --override "reason" to deploy it anyway'
    )
    assert "history was rewritten" not in message
    pipeline = Pipeline(inv, Recorder(), connect=fleet.connect, live_revision=live)
    plan = pipeline.plan(DeployRequest(user=USER, ref=older, override="roll forward to the old code"))
    assert [c.sha for c in plan.departing] == [live] and plan.commits == []
    assert f"takes 1 live commit(s) off the fleet:\n    {live[:7]} Faster pages" in pipeline.describe(plan)
    assert pipeline.run(plan).result == "ok" and set(fleet.current.values()) == {older}


def test_a_live_revision_off_trunk_never_dead_ends(tmp_path, trunk):
    """A hotfix went out from a side branch; trunk must still be deployable, with an override
    and the hotfix named as what leaves the fleet."""
    inv, fleet = inventory(tmp_path, trunk), FakeFleet()
    hotfix, tip = sha(trunk, "hotfix"), sha(trunk, "main")
    message = refusal(inv, fleet, live_revision=hotfix)
    lines = message.splitlines()
    assert lines[0] == (
        f"refusing to deploy {tip[:7]}: live {hotfix[:7]} is not in its history: it takes 1 live commit(s) off the "
        'fleet; pass --override "reason" to deploy it anyway'
    )
    assert lines[1] == f"  off the fleet: {hotfix[:7]} Hotfix the cart"
    pipeline = Pipeline(inv, Recorder(), connect=fleet.connect, live_revision=hotfix)
    plan = pipeline.plan(DeployRequest(user=USER, override="trunk has the fix too"))
    assert [c.sha for c in plan.commits] == [tip]  # the queue: trunk's commits after where the two part
    assert [c.sha for c in plan.departing] == [hotfix]
    assert pipeline.run(plan).result == "ok" and set(fleet.current.values()) == {tip}


# -- a switch checks every host first -----------------------------------------------------


def test_a_switch_to_a_release_some_hosts_lack_switches_none(tmp_path, trunk):
    inv, fleet = inventory(tmp_path, trunk), FakeFleet()
    first, _ = deploy(inv, fleet, ref="main~1")
    second, _ = deploy(inv, fleet, hosts=tuple(HOSTS[:4]), live_revision=sha(trunk, "main~1"), override="half")
    assert first.result == second.result == "ok"
    before = dict(fleet.current)
    rec = Recorder()
    pipeline = Pipeline(inv, rec, connect=fleet.connect)
    done = pipeline.switch(second.deploy_id, USER, "switch-1")
    assert done.result == "failed", done
    assert done.message == (
        f"release {second.deploy_id} is missing on 4 of 8 hosts (web05, web06, web07, web08): no host was switched"
    )
    assert fleet.current == before
    assert sorted(fleet.hosts_of("activate")) == sorted(HOSTS + HOSTS[:4])  # the two deploys' only
    assert sorted(e.host for e in rec.of(HostFailed)) == HOSTS[4:]

    # a host that cannot be asked counts against max_failures; within it, the others switch
    fleet.fail[("web08", "check")] = "ssh: connect to host 127.0.0.1 port 2208: Connection refused"
    done = Pipeline(inventory(tmp_path, trunk, max_failures=1), Recorder(), connect=fleet.connect).switch(
        first.deploy_id, USER, "switch-2"
    )
    assert done.result == "partial", done
    assert dict(done.hosts_failed) == {"web08": "activate: " + fleet.fail["web08", "check"]}
    assert {fleet.current[h] for h in HOSTS[:7]} == {sha(trunk, "main~1")}


# -- a failed run ends failed, and leaves no build ---------------------------------------


@pytest.mark.parametrize(
    ("keys", "fault", "expected"),
    [
        ({"build": {"command": "echo broken >&2; exit 3"}}, None, "build.command 'echo broken >&2; exit 3' exited 3"),
        ({}, OSError(errno.ENOSPC, "No space left on device", "/state/builds/x/assets/a.css"), "No space left"),
    ],
)
def test_a_run_that_fails_in_its_build_ends_failed_and_leaves_no_build(
    tmp_path, trunk, monkeypatch, keys, fault, expected
):
    inv, fleet = inventory(tmp_path, trunk, **keys), FakeFleet()
    if fault is not None:

        def full_disk(*args, **kwargs):
            raise fault

        monkeypatch.setattr("console.pipeline.run.build_release", full_disk)
    done = run_deploy(inv, DeployRequest(user=USER), connect=fleet.connect)
    assert done.result == "failed" and expected in done.message, done
    assert [p.name for p in (inv.state_dir / "builds").iterdir()] == []  # the partial build is gone
    record = History(inv.state_dir).get(done.deploy_id)
    assert (record.result, record.state) == ("failed", "failed")
    assert fleet.calls == []


def test_everything_under_the_state_dir_is_private(tmp_path, trunk):
    inv, fleet = inventory(tmp_path, trunk), FakeFleet()
    assert run_deploy(inv, DeployRequest(user=USER), connect=fleet.connect).result == "ok"
    spawn("console.no_such_module", inv, {}, runs_dir(inv) / "child.out").wait(30)
    seen = 0
    for path in [inv.state_dir, *inv.state_dir.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        seen += 1
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, f"{path} has mode {stat.S_IMODE(st.st_mode):04o}"
    names = {p.name for p in inv.state_dir.rglob("*")}
    assert {"builds", "LAST", "checkout.lock", "child.out", "history.sqlite", "deploys"} <= names and seen > 20


# -- a broken checkout heals -----------------------------------------------------------------


def test_a_checkout_broken_by_a_bad_repo_url_heals_once_the_url_is_fixed(tmp_path, trunk):
    bad = inventory(tmp_path, trunk, repo=str(tmp_path / "no-such-repo.git"))
    with pytest.raises(ConsoleError, match="cannot fetch trunk from"):
        Checkout(bad).update()
    good = inventory(tmp_path, trunk)
    Checkout(good).update()
    assert Checkout(good).tip() == sha(trunk, "refs/heads/main")

    # a first run that died before it added origin, and a checkout that is no repository
    checkout = Checkout(good)
    subprocess.run(["git", "-C", str(checkout.path), "remote", "remove", "origin"], check=True)
    checkout.update()
    assert checkout.tip() == sha(trunk, "refs/heads/main")
    shutil.rmtree(checkout.path / ".git")
    (checkout.path / ".git").mkdir()
    checkout.update()
    assert checkout.tip() == sha(trunk, "refs/heads/main")
