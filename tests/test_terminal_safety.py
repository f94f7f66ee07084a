"""Untrusted text never reaches a terminal raw: commits whose subjects and authors carry
terminal control sequences (retitle, clear, hide, clipboard), a carriage return, C1
controls, bidi overrides and console markup go through `invoke queue`, a refused deploy,
`--dry-run`, `history` and `status`, and nothing they print holds a raw ESC or C0
character but the newline; `--json` keeps the values, JSON-escaped. The same commits,
a hostile history record and lock go to the console (Pilot, on the fake service): it
neither crashes nor reads them as markup, and no screen it draws holds a raw control.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from dataclasses import replace

import pytest

from console.pipeline.plan import DeployRequest
from console.session.runs import run_deploy
from support.cli import run_invoke
from support.fake_fleet import REVIEWED, USER, FakeFleet, inventory, shop_trunk
from support.gitrepo import Repo
from support.tui_fixtures import NOW, FakeService, LockInfo, make_app, sample_queue

#: What a hostile commit may hold: each would drive a terminal that printed it raw.
HOSTILE = {
    "retitle": "\x1b]0;owned\x07",
    "clear": "\x1b[2J\x1b[H",
    "hide": "\x1b[8m",
    "clipboard": "\x1b]52;c;cm0gLXJmIH4=\x07",
    "overwrite": "ok\rFAKE",
    "c1": "\x9b31m",
    "bidi": "admin\u202egnp.exe\u2066",
    "markup": "[/] [bold red]x[/bold red] [link=http://evil]",
}
#: Any C0 control but the newline, DEL, C1 controls, and the bidi overrides and isolates.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def trunk(tmp_path_factory) -> Repo:
    repo = shop_trunk(tmp_path_factory.mktemp("hostile") / "trunk")
    for name, text in HOSTILE.items():
        repo.commit(
            f"Fix {name} {text} done" + REVIEWED, {f"shop/{name}.txt": name}, author=f"Eve {text} <eve@x.example>"
        )
    repo.commit(f"Unreviewed {HOSTILE['retitle']}{HOSTILE['hide']}[NOT REVIEWED]", {"shop/late.txt": "late"})
    return repo


def safe(text: str, where: str) -> None:
    found = RAW.search(text)
    assert found is None, (
        f"{where} printed {found.group()!r} raw: {text[max(0, found.start() - 40) : found.end() + 40]!r}"
    )


def test_the_queue_and_a_refused_deploy_print_no_control_character(tmp_path, trunk, capsys):
    inv = inventory(tmp_path, trunk)
    code, out, err = run_invoke(["queue", "-i", str(inv.path)], capsys)
    assert code == 0, err
    safe(out + err, "invoke queue")
    assert "\\x1b]0;owned\\x07" in out and "admin⟨U+202E⟩gnp.exe⟨U+2066⟩" in out and "[/] [bold red]" in out
    assert out.count("\n") == len(HOSTILE) + 3  # a header and one line per commit: no line was broken

    code, out, err = run_invoke(["queue", "--json", "-i", str(inv.path)], capsys)
    subjects = [c["subject"] for c in json.loads(out)["queue"]]
    assert subjects[1] == f"Fix retitle {HOSTILE['retitle']} done"  # the value itself, JSON-escaped
    safe(out, "invoke queue --json")

    code, out, err = run_invoke(["deploy", "-i", str(inv.path)], capsys)
    assert code == 1 and "refusing to deploy" in err, err
    safe(out + err, "a refused deploy")
    assert "\\x1b[8m[NOT REVIEWED]: not reviewed" in err


def test_the_dry_run_prints_no_control_character(tmp_path, trunk, capsys):
    inv = inventory(tmp_path, trunk)
    code, out, err = run_invoke(["deploy", "--dry-run", "-i", str(inv.path)], capsys)
    assert code == 0, err
    safe(out + err, "invoke deploy --dry-run")
    assert "Fix clear \\x1b[2J\\x1b[H done (Eve \\x1b[2J\\x1b[H)" in out and "WOULD BE REFUSED" in out


def test_history_and_status_print_no_control_character(tmp_path, trunk, capsys):
    inv = inventory(tmp_path, trunk, max_failures=1)
    fleet = FakeFleet()
    fleet.fail[("web03", "restart")] = f"restart exited 1: {HOSTILE['clear']}{HOSTILE['clipboard']}pwned"
    done = run_deploy(inv, DeployRequest(user=USER, override="the hostile queue, on purpose"), connect=fleet.connect)
    assert done.result == "partial", done
    # a record written before text was made clean (an older version, a hand edit)
    with sqlite3.connect(inv.state_dir / "history.sqlite") as db:
        db.execute(
            "UPDATE deploys SET user = ?, message = ? WHERE id = ?",
            (f"mallory{HOSTILE['retitle']}", f"done {HOSTILE['overwrite']}{HOSTILE['bidi']}", done.deploy_id),
        )
    code, out, err = run_invoke(["history", "-i", str(inv.path)], capsys)
    assert code == 0, err
    safe(out + err, "invoke history")
    assert "mallory\\x1b]0;owned\\x07" in out and "ok\\rFAKE" in out

    code, out, err = run_invoke(["status", "-i", str(inv.path)], capsys)
    assert code == 0, err
    safe(out + err, "invoke status")
    assert "FAILED web03: restart exited 1: \\x1b[2J\\x1b[H\\x1b]52;c;cm0gLXJmIH4=\\x07pwned" in out


def hostile_service() -> FakeService:
    """The fake service with every commit, the newest record and the lock made hostile."""
    queue = [
        replace(c, subject=f"{c.subject} {text}", author=f"Eve {text}")
        for c, text in zip(sample_queue() * 2, HOSTILE.values(), strict=False)
    ]
    queue = [replace(c, sha=f"{i:02x}{c.sha[2:]}", short=f"{i:02x}{c.short[2:]}") for i, c in enumerate(queue)]
    service = FakeService(hosts=12, queue=queue)
    service.records[0] = replace(service.records[0], user="Eve [/]", message=HOSTILE["clear"] + HOSTILE["markup"])
    service.lock = LockInfo(f"mallory {HOSTILE['markup']}", f"because {HOSTILE['retitle']}[/]", NOW - 60)
    return service


def test_the_console_shows_hostile_text_without_crashing_or_reading_markup():
    async def run() -> None:
        app = make_app(hostile_service())
        async with app.run_test(size=(140, 44)) as pilot:
            screen = app.console_screen
            table = screen.query_one("QueueTable")
            for _ in range(100):
                if table.row_count == len(HOSTILE):
                    break
                await pilot.pause(0.05)
            assert table.row_count == len(HOSTILE)
            for row in range(table.row_count):  # every commit's detail
                table.move_cursor(row=row)
                await pilot.pause()
                safe(app.export_screenshot(), f"the console on queue row {row}")
            cells = [str(table.get_cell_at((row, 4))) for row in range(table.row_count)]
            assert "Eve [/]" in "".join(cells) and "Eve [/] [bold red]x[/bold red]" in cells[0]
            await pilot.press("d")  # the confirmation, with the refusals of hostile commits
            await pilot.pause(0.3)
            safe(app.export_screenshot(), "the deploy confirmation")
            await pilot.press("escape")
            await pilot.press("4")  # the history tab
            await pilot.pause(0.3)
            safe(app.export_screenshot(), "the history tab")
            assert app.is_running

    asyncio.run(run())
