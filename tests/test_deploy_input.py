"""Bad input gives one line and changes nothing on any host: an unknown ref, an empty
repository, a revision without its assets directory, an unreachable repository."""

from __future__ import annotations

import subprocess

import pytest

from console.core.errors import ConsoleError
from console.demo.trunk import commit_change
from console.state.history import History
from support.fleet import Fleet, deploy, make_fleet

pytestmark = pytest.mark.lab
HOSTS = 2


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    fleet = make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("deploy-input"))
    done = deploy(fleet.inventory())
    assert done.result == "ok", done
    return fleet


@pytest.fixture
def unchanged(fleet):
    """Every path under the deploy path of both hosts is the same after the test."""
    before = {h: fleet.listing(h) for h in fleet.hosts}
    yield
    assert {h: fleet.listing(h) for h in fleet.hosts} == before


def one_line_error(inventory, **request) -> str:
    with pytest.raises(ConsoleError) as caught:
        deploy(inventory, **request)
    message = str(caught.value)
    assert message and "\n" not in message, message
    return message


def test_unknown_ref(fleet, unchanged):
    message = one_line_error(fleet.inventory(), ref="no-such-branch")
    assert message.startswith("unknown ref 'no-such-branch'"), message


def test_empty_repository(fleet, unchanged, tmp_path):
    empty = tmp_path / "empty.git"
    subprocess.run(["git", "init", "-q", "--bare", str(empty)], check=True)
    message = one_line_error(fleet.inventory(repo=str(empty)))  # the checkout once fetched the real trunk
    assert "no commits on branch 'main'" in message, message


def test_missing_assets_directory(fleet, unchanged):
    names = subprocess.run(
        ["git", "-C", str(fleet.trunk.path), "ls-tree", "-r", "--name-only", "main", "assets/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert names
    sha = commit_change(fleet.trunk, dict.fromkeys(names), "Move the assets away")
    message = one_line_error(fleet.inventory(), ref=sha)
    assert f"{sha[:7]} has no assets directory 'assets/'" in message, message
    assert all(d.revision != sha for d in History(fleet.state_dir).deploys(5))  # refused before it started


def test_unreachable_repository(fleet, unchanged, tmp_path):
    # the trunk's host is gone: the same path, nothing there
    moved = tmp_path / "away.git"
    fleet.trunk.path.rename(moved)
    try:
        message = one_line_error(fleet.inventory())
    finally:
        moved.rename(fleet.trunk.path)
    assert message.startswith(f"cannot fetch trunk from {fleet.trunk.path}"), message
    # and a repository path that never existed
    message = one_line_error(fleet.inventory(repo=str(tmp_path / "nowhere.git")))
    assert "nowhere.git" in message, message


def test_the_fleet_still_deploys_after_bad_input(fleet):
    sha = fleet.change("after-bad-input")
    done = deploy(fleet.inventory(), ref=sha)
    assert done.result == "ok", done
    assert [fleet.revision(h) for h in fleet.hosts] == [sha] * HOSTS
