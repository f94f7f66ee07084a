"""The demo trunk: a real bare git repository with the history the demo deploys."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from console.core.errors import ConsoleError
from console.demo.trunk import ROLES, Trunk, commit_change, create_trunk

ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=ENV).stdout


@pytest.fixture(scope="module")
def trunk(tmp_path_factory) -> Trunk:
    return create_trunk(tmp_path_factory.mktemp("trunk") / "shop.git")


def test_the_roles_are_the_branch_history_oldest_first(trunk):
    assert git(trunk.path, "rev-parse", "--is-bare-repository").strip() == "true"
    assert trunk.branch == "main"
    assert list(trunk.commits) == list(ROLES)
    assert git(trunk.path, "rev-list", "--reverse", "main").split() == list(trunk.commits.values())
    assert trunk.head == trunk.ddl == git(trunk.path, "rev-parse", "main").strip()
    assert list(trunk.commits).index("breaking") < list(trunk.commits).index("fix")


def test_every_commit_but_the_unreviewed_one_carries_a_review_trailer(trunk):
    out = git(
        trunk.path, "log", "--reverse", "--format=%H %(trailers:key=Reviewed-by,valueonly,separator=%x2C)", "main"
    )
    reviewers = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.splitlines())
    for role, commit in trunk.commits.items():
        if role == "unreviewed":
            assert reviewers[commit].strip() == ""
        else:
            name_email = reviewers[commit].strip()
            assert name_email.endswith("@workshop.example>") and " <" in name_email, role


def test_authors_and_dates_are_fixed_and_minutes_apart(trunk, tmp_path):
    dates = [int(t) for t in git(trunk.path, "log", "--reverse", "--format=%ct", "main").split()]
    gaps = {b - a for a, b in itertools.pairwise(dates)}
    assert gaps == {7 * 60}
    assert len(set(git(trunk.path, "log", "--format=%ae", "main").split())) >= 3
    again = create_trunk(tmp_path / "again.git")
    assert again.commits == trunk.commits  # nothing of this machine's git config leaks in


def test_the_ddl_commit_adds_a_migration_with_alter_table(trunk):
    files = git(trunk.path, "show", "--format=", "--name-status", trunk.ddl).split()
    assert files == ["A", "migrations/0002_add_gift_wrap.sql"]
    sql = git(trunk.path, "show", f"{trunk.ddl}:migrations/0002_add_gift_wrap.sql")
    assert "ALTER TABLE orders ADD COLUMN gift_wrap" in sql


def test_changes_touch_pages_css_js_and_checkout(trunk):
    def changed(role: str) -> list[str]:
        return git(trunk.path, "show", "--format=", "--name-only", trunk.commits[role]).split()

    assert changed("copy") == ["shop/pages.py"]
    assert changed("style") == ["assets/css/shop.css"]
    assert changed("script") == ["assets/js/shop.js"]
    assert changed("breaking") == ["shop/checkout.py"] == changed("fix")
    assert "KeyError" in git(trunk.path, "log", "-1", "--format=%B", trunk.fix)


def test_commit_change_adds_one_commit_on_top(trunk, tmp_path):
    copy = create_trunk(tmp_path / "copy.git")
    reviewed = commit_change(copy, {"assets/css/shop.css": "body { color: red; }\n"}, "Make it red")
    plain = commit_change(
        copy, {"notes/todo.txt": "gift wrap UI\n"}, "Note what is next\n\nA body line.", reviewed=False
    )
    assert git(copy.path, "rev-list", "--reverse", "main").split()[-2:] == [reviewed, plain]
    assert (
        git(copy.path, "log", "-1", "--format=%(trailers:key=Reviewed-by)", reviewed)
        .strip()
        .startswith("Reviewed-by: ")
    )
    assert git(copy.path, "log", "-1", "--format=%(trailers:key=Reviewed-by)", plain).strip() == ""
    assert git(copy.path, "show", f"{reviewed}:assets/css/shop.css") == "body { color: red; }\n"
    assert git(copy.path, "log", "-1", "--format=%s", plain).strip() == "Note what is next"


def test_create_trunk_refuses_a_directory_in_use(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(ConsoleError, match="already exists"):
        create_trunk(tmp_path / "used")
