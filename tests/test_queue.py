"""The queue of reviewed changes, on real git repositories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import console.trunk.git
from console.core.errors import ConsoleError
from console.trunk.ddl import DdlHit
from console.trunk.queue import (
    Change,
    Refusal,
    included,
    pending_changes,
    position_refusal,
    queue_for,
    refusal_message,
    refusals,
    to_json,
)
from support.gitrepo import T0, Repo

REVIEWED = "\n\nReviewed-by: Bob Brown <bob@example.com>"


@pytest.fixture(scope="module")
def trunk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Repo, list[str]]:
    """live, then: reviewed, unreviewed (trailer in prose), reviewed DDL, reviewed by two."""
    repo = Repo(tmp_path_factory.mktemp("queue") / "trunk")
    shas = [
        repo.commit("Start the shop" + REVIEWED, {"shop/app.py": "print('shop')\n"}),
        repo.commit(
            "Add checkout" + REVIEWED,
            {"shop/checkout.py": "def checkout(): ...\n", "shop/app.py": "print('shop!')\n"},
            author="Carol Cole <carol@example.com>",
        ),
        repo.commit(
            "Tweak banner\n\nReviewed-by: nobody yet, this line is prose\nand the paragraph goes on.\n\nThanks.",
            {"shop/banner.txt": "Sale!\n"},
        ),
        repo.commit(
            "Add nickname column" + REVIEWED,
            {"migrations/0002.sql": "ALTER TABLE users ADD COLUMN nick text;\n"},
        ),
        repo.commit(
            "Faster pages\n\nBody text.\n\nReviewed-by: Bob Brown <bob@example.com>\nreviewed-by: Dan <dan@example.com>",
            {"shop/app.py": "print('fast shop')\n"},
        ),
    ]
    return repo, shas


def test_queue_lists_undeployed_commits_oldest_first(trunk: tuple[Repo, list[str]]) -> None:
    repo, shas = trunk
    queue = pending_changes(repo.path, shas[0], "main")
    assert [c.sha for c in queue] == shas[1:]
    first = queue[0]
    assert first == Change(
        sha=shas[1],
        short=shas[1][:7],
        author="Carol Cole",
        email="carol@example.com",
        time=T0 + 120,
        subject="Add checkout",
        files=("shop/app.py", "shop/checkout.py"),
        approved=True,
        reviewers=("Bob Brown <bob@example.com>",),
        ddl=(),
        merge=False,
    )


def test_whole_history_and_nothing_to_deploy(trunk: tuple[Repo, list[str]]) -> None:
    repo, shas = trunk
    assert [c.sha for c in pending_changes(repo.path, None, "main")] == shas
    assert pending_changes(repo.path, shas[-1], "main") == []
    assert [c.sha for c in pending_changes(repo.path, shas[1], shas[3])] == shas[2:4]


def test_review_trailers(trunk: tuple[Repo, list[str]]) -> None:
    repo, shas = trunk
    by_sha = {c.sha: c for c in pending_changes(repo.path, None, "main")}
    assert by_sha[shas[2]].approved is False  # "Reviewed-by:" in the middle of prose is no trailer
    assert by_sha[shas[2]].reviewers == ()
    assert by_sha[shas[4]].approved is True
    assert by_sha[shas[4]].reviewers == ("Bob Brown <bob@example.com>", "Dan <dan@example.com>")


def test_configurable_trailer(trunk: tuple[Repo, list[str]]) -> None:
    repo, _shas = trunk
    repo_queue = pending_changes(repo.path, None, "main", trailer="Acked-by:")
    assert not any(c.approved for c in repo_queue)
    with pytest.raises(ConsoleError, match="not a trailer key"):
        pending_changes(repo.path, None, "main", trailer="Reviewed by,valueonly")


def test_ddl_flag_names_file_and_line(trunk: tuple[Repo, list[str]]) -> None:
    repo, shas = trunk
    queue = pending_changes(repo.path, shas[0], "main")
    assert [c.ddl for c in queue] == [
        (),
        (),
        (DdlHit("migrations/0002.sql", 1, "ALTER TABLE users ADD COLUMN nick text;", "statement"),),
        (),
    ]
    assert pending_changes(repo.path, shas[0], "main", ddl_paths=["shop/**"])[0].ddl == (
        DdlHit("shop/app.py", None, "matches ddl path shop/**", "path"),
        DdlHit("shop/checkout.py", None, "matches ddl path shop/**", "path"),
    )


def test_included_and_refusals(trunk: tuple[Repo, list[str]]) -> None:
    repo, shas = trunk
    queue = pending_changes(repo.path, shas[0], "main")
    assert [c.sha for c in included(queue, shas[1][:7])] == shas[1:2]
    assert [c.sha for c in included(queue, shas[3])] == shas[1:4]
    assert refusals(included(queue, shas[1])) == []
    refused = refusals(included(queue, shas[4]))
    assert refused == [
        Refusal(shas[2], shas[2][:7], "Tweak banner", "not reviewed"),
        Refusal(
            shas[3],
            shas[3][:7],
            "Add nickname column",
            "DDL: migrations/0002.sql:1 ALTER TABLE users ADD COLUMN nick text;",
        ),
    ]
    message = refusal_message(refused)
    lines = message.splitlines()
    assert len(lines) == 3
    assert "--override" in lines[0]
    assert lines[1] == f"  {shas[2][:7]} Tweak banner: not reviewed"
    assert lines[2].startswith(f"  {shas[3][:7]} Add nickname column: DDL: migrations/0002.sql:1 ALTER TABLE")
    assert refusal_message([]) == ""


def test_included_rejects_unknown_targets(trunk: tuple[Repo, list[str]]) -> None:
    repo, shas = trunk
    queue = pending_changes(repo.path, shas[2], "main")
    with pytest.raises(ConsoleError, match="not in the queue"):
        included(queue, shas[1])  # already live
    with pytest.raises(ConsoleError, match="not a commit id"):
        included(queue, "main")


def test_unreviewed_and_ddl_in_one_commit() -> None:
    change = Change(
        "a" * 40,
        "aaaaaaa",
        "A",
        "a@x",
        T0,
        "Both",
        ("m.sql",),
        False,
        (),
        (
            DdlHit("m.sql", 1, "CREATE TABLE a (x int)", "statement"),
            DdlHit("m.sql", 2, "CREATE TABLE b (x int)", "statement"),
            DdlHit("m.sql", 3, "CREATE TABLE c (x int)", "statement"),
        ),
        False,
    )
    [refusal] = refusals([change])
    assert refusal.reason == (
        "not reviewed; DDL: m.sql:1 CREATE TABLE a (x int); m.sql:2 CREATE TABLE b (x int) (+1 more)"
    )


def test_unknown_refs_and_rewritten_history(trunk: tuple[Repo, list[str]], tmp_path: Path) -> None:
    repo, _shas = trunk
    for live, tip, ref in [(None, "nope", "nope"), ("gone", "main", "gone"), ("0" * 40, "main", "0" * 40)]:
        with pytest.raises(ConsoleError, match=f"unknown ref '{ref}'") as err:
            pending_changes(repo.path, live, tip)
        assert "\n" not in str(err.value)

    other = Repo(tmp_path / "rewritten")
    base = other.commit("one" + REVIEWED)
    old = other.commit("two" + REVIEWED)
    other.when += 60
    other.git("commit", "-q", "--amend", "--allow-empty", "-m", "two, amended" + REVIEWED)
    # live is not on the branch any more: the queue starts where the two part
    assert [c.subject for c in pending_changes(other.path, old, "main")] == ["two, amended"]
    found = queue_for(other.path, old, other.head())
    assert [c.sha for c in found.changes] == [other.head()] and [c.sha for c in found.departing] == [old]
    assert not found.older and found.live_known
    refusal = position_refusal(found, on_branch=True, branch="main")
    assert refusal.splitlines()[0] == (
        f"refusing to deploy {other.head()[:7]}: live {old[:7]} is not in its history: it takes 1 live commit(s) "
        'off the fleet; pass --override "reason" to deploy it anyway'
    )
    assert refusal.splitlines()[1] == f"  off the fleet: {old[:7]} two"
    # a commit older than live
    back = queue_for(other.path, other.head(), base)
    assert back.older and back.changes == [] and [c.subject for c in back.departing] == ["two, amended"]
    assert "is older than live" in position_refusal(back, on_branch=True, branch="main")
    assert "to go back use invoke switch" in position_refusal(back, on_branch=True, branch="main")
    # live unknown to the repository: the whole branch, and it says so
    gone = queue_for(other.path, "f" * 40, other.head())
    assert not gone.live_known and len(gone.changes) == 2
    assert "is not in trunk's repository" in position_refusal(gone, on_branch=True, branch="main")
    assert position_refusal(queue_for(other.path, base, other.head()), on_branch=True, branch="main") == ""
    assert "is not on branch main" in position_refusal(
        queue_for(other.path, base, other.head()), on_branch=False, branch="main"
    )

    with pytest.raises(ConsoleError, match="does not exist"):
        pending_changes(tmp_path / "missing", None, "main")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConsoleError, match="not a git repository"):
        pending_changes(tmp_path / "plain", None, "main")


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Repo, dict[str, str]]:
    repo = Repo(tmp_path_factory.mktemp("merges") / "trunk")
    s = {"live": repo.commit("Start" + REVIEWED, {"app.py": "v = 1\n"})}
    # A topic branch reviewed commit by commit, with trunk merged into it halfway.
    repo.git("checkout", "-q", "-b", "topic")
    s["t1"] = repo.commit("Topic one\n\nReviewed-by: Erin <erin@example.com>", {"topic.py": "a = 1\n"})
    repo.git("checkout", "-q", "main")
    s["m1"] = repo.commit("Trunk fix" + REVIEWED, {"fix.py": "f = 1\n"})
    repo.git("checkout", "-q", "topic")
    repo.merge("main", "Merge main into topic")
    s["t2"] = repo.commit(
        "Topic two" + REVIEWED, {"topic.py": "a = 2\n", "migrations/0003.sql": "CREATE INDEX ix ON t (a);\n"}
    )
    repo.git("checkout", "-q", "main")
    s["merge_ok"] = repo.merge("topic", "Merge topic")
    # A branch with one unreviewed commit, merged without a trailer, then one merged with one.
    repo.git("checkout", "-q", "-b", "sloppy")
    s["s1"] = repo.commit("Sloppy one" + REVIEWED, {"s.py": "s = 1\n"})
    s["s2"] = repo.commit("Sloppy two", {"s.py": "s = 2\n"})
    repo.git("checkout", "-q", "main")
    s["merge_bad"] = repo.merge("sloppy", "Merge sloppy")
    repo.git("checkout", "-q", "-b", "sloppy2")
    s["u1"] = repo.commit("Unreviewed", {"u.py": "u = 1\n"})
    repo.git("checkout", "-q", "main")
    s["merge_signed"] = repo.merge("sloppy2", "Merge sloppy2\n\nReviewed-by: Frank <frank@example.com>")
    return repo, s


def test_merges(merged: tuple[Repo, dict[str, str]]) -> None:
    repo, s = merged
    queue = pending_changes(repo.path, s["live"], "main")
    assert [c.sha for c in queue] == [s["m1"], s["merge_ok"], s["merge_bad"], s["merge_signed"]]
    m1, ok, bad, signed = queue
    assert not m1.merge and ok.merge and bad.merge and signed.merge

    assert ok.approved is True
    assert ok.reviewers == ("Erin <erin@example.com>", "Bob Brown <bob@example.com>")
    assert ok.files == ("migrations/0003.sql", "topic.py")  # against the first parent: not fix.py
    assert ok.ddl == (DdlHit("migrations/0003.sql", 1, "CREATE INDEX ix ON t (a);", "statement"),)

    assert bad.approved is False and bad.reviewers == ()
    assert bad.files == ("s.py",)

    assert signed.approved is True and signed.reviewers == ("Frank <frank@example.com>",)

    refused = refusals(included(queue, s["merge_signed"]))
    assert [(r.short, r.reason.split(":")[0]) for r in refused] == [
        (s["merge_ok"][:7], "DDL"),
        (s["merge_bad"][:7], "not reviewed"),
    ]


def test_merge_only_queue_from_the_merge_base(merged: tuple[Repo, dict[str, str]]) -> None:
    repo, s = merged
    [ok] = pending_changes(repo.path, s["m1"], s["merge_ok"])
    assert ok.approved and ok.merge


def test_one_git_log_per_refresh(
    trunk: tuple[Repo, list[str]], merged: tuple[Repo, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(cmd, *args, **kwargs):
        calls.append(list(cmd))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(console.trunk.git.subprocess, "run", counting_run)
    repo, shas = trunk
    pending_changes(repo.path, shas[0], "main")
    assert sum("log" in c for c in calls) == 1
    assert len(calls) == 4  # rev-parse tip, rev-parse live, merge-base --is-ancestor, log
    calls.clear()
    repo, s = merged
    pending_changes(repo.path, s["live"], "main")
    assert sum("log" in c for c in calls) == 2  # a queue holding merges asks once more, for their branches


def test_to_json(trunk: tuple[Repo, list[str]]) -> None:
    repo, shas = trunk
    change = pending_changes(repo.path, shas[2], shas[3])[0]
    data = to_json(change, now=T0 + 240 + 3600)
    assert json.loads(json.dumps(data)) == data
    assert data["time_iso"] == "2023-11-14T22:17:20Z"
    assert data["age_s"] == 3600
    assert data["ddl"] == [
        {
            "file": "migrations/0002.sql",
            "line": 1,
            "text": "ALTER TABLE users ADD COLUMN nick text;",
            "why": "statement",
        }
    ]
    assert data["approved"] is True and data["merge"] is False and data["files"] == ["migrations/0002.sql"]


# --- console.trunk.git, which the queue and the engine share -------------------------------


def test_run_git_failure_is_one_line(trunk: tuple[Repo, list[str]]) -> None:
    from console.trunk.git import run_git

    repo, _ = trunk
    with pytest.raises(ConsoleError) as err:
        run_git(repo.path, "cat-file", "-p", "no-such-object")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"git cat-file -p no-such-object failed in {repo.path} (exit 128): fatal:")


def test_run_git_uses_repo_even_inside_a_hook(
    trunk: tuple[Repo, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.trunk.git import run_git

    repo, shas = trunk
    other = Repo(tmp_path / "other")
    other.commit("other")
    monkeypatch.setenv("GIT_DIR", str(other.path / ".git"))  # as a git hook would have it
    assert run_git(repo.path, "rev-parse", "HEAD").strip() == shas[-1]
    assert (
        run_git(repo.path, "hash-object", "--stdin", input="x\n").strip() == "587be6b4c3f93f93c489c0111bba5596147a26cb"
    )
