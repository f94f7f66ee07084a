"""`deploy-console --web`: the console in a real headless browser (Debian's chromium) against
the lab fleet, and the guards of the web server (Host, Origin, the token)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from console.core.errors import ConsoleError
from console.state.history import History
from console.tui.web import COOKIE, WebConsole, parse_bind, web_token
from support import browser
from support.fleet import make_fleet

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subject(trunk, sha: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(trunk.path), "log", "-1", "--format=%s", sha], capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.mark.lab
@pytest.mark.skipif(not browser.available(), reason="Debian's chromium is not installed (./dev test installs it)")
def test_the_console_in_a_browser_deploys_to_the_lab_fleet(lab_factory, tmp_path):
    fleet = make_fleet(lab_factory, 3, tmp_path / "fleet")
    inventory = fleet.inventory()
    from support.fleet import deploy

    assert deploy(inventory, ref=fleet.trunk.initial).result == "ok"
    port = free_port()
    env = {**os.environ, "DEPLOY_USER": "webtester"}
    server = subprocess.Popen(
        [sys.executable, "-m", "console", "-i", str(inventory.path), "--web", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert f"deploy console on http://127.0.0.1:{port}/" in line, line
        with browser.chromium() as chromium:
            page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.add_init_script(browser.RECORD_SCREEN)
            page.goto(f"http://127.0.0.1:{port}/")
            # the page loads, and the queue shows: the newest commit that can go out is highlighted
            browser.wait_for_text(page, "Queue [1]")
            browser.wait_for_text(page, subject(fleet.trunk, fleet.trunk.fix)[:30])
            page.screenshot(path=str(tmp_path / "queue.png"))
            page.locator(".xterm-helper-textarea").focus()
            page.keyboard.press("d")
            at = browser.wait_for_text(page, "to 3 hosts in 1 chunk")
            page.keyboard.press("Enter")
            browser.wait_for_text(page, "started", since=at)
            # the deploy from the page reaches the lab fleet
            history = History(inventory.state_dir)
            deadline = time.monotonic() + 90
            while history.live_revision(environment=inventory.environment) != fleet.trunk.fix:
                assert time.monotonic() < deadline, "the deploy started from the page never went live"
                time.sleep(0.5)
            assert {fleet.revision(h) for h in fleet.hosts} == {fleet.trunk.fix}
            assert history.deploys(1)[0].user.endswith(" (webtester)")  # the OS account, DEPLOY_USER beside it
            page.screenshot(path=str(tmp_path / "deployed.png"))
    finally:
        server.terminate()
        server.wait(20)


def test_bind_and_token():
    assert parse_bind("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    for bad in ("8000", "127.0.0.1", "host:0", "host:http", ":80"):
        with pytest.raises(ConsoleError, match="expected HOST:PORT"):
            parse_bind(bad)
    assert web_token("127.0.0.1", None) is None and web_token("localhost", None) is None
    made = web_token("198.18.0.1", None)
    assert made and len(made) >= 32 and made != web_token("198.18.0.1", None)
    assert web_token("198.18.0.1", "fixed-token") == "fixed-token" == web_token("127.0.0.1", "fixed-token")


def guarded(host: str, token: str | None):
    """Requests against the guard of a console configured for `host` (served on loopback)."""

    async def run(check) -> None:
        console = WebConsole(ROOT / "hosts" / "example-production.yaml", host, 8000, token)
        app = await console._make_app()
        app.on_startup.clear()
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await check(client)

    return run


def test_a_non_loopback_console_needs_its_token_and_moves_it_into_a_cookie():
    async def check(client) -> None:
        assert (await client.get("/")).status == 403
        assert (await client.get("/?token=wrong")).status == 403
        moved = await client.get("/?token=s3cret&fontsize=18", allow_redirects=False)
        assert moved.status == 303 and moved.headers["Location"] == "/?fontsize=18"
        cookie = moved.cookies[COOKIE]
        assert cookie.value == "s3cret" and cookie["httponly"] and cookie["samesite"] == "Strict"
        page = await client.get("/", cookies={COOKIE: "s3cret"})
        assert page.status == 200 and "s3cret" not in await page.text()
        assert (await client.get("/static/js/textual.js", cookies={COOKIE: "nope"})).status == 403

    asyncio.run(guarded("198.18.0.1", "s3cret")(check))


def test_a_loopback_console_refuses_other_hosts_and_other_origins():
    async def check(client) -> None:
        assert (await client.get("/", headers={"Host": "evil.example:8000"})).status == 403
        ws = await client.get("/ws", headers={"Host": "127.0.0.1:8000", "Origin": "http://evil.example"})
        assert ws.status == 403
        assert (await client.get("/", headers={"Host": "localhost:8000"})).status == 200

    asyncio.run(guarded("127.0.0.1", None)(check))
