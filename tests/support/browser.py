"""A real headless browser for the --web tests: Debian's chromium, driven by playwright.

Chromium is started here with exactly the flags a locked-down headless run needs (no
sandbox for root in a container, no GPU, no background network, a new profile) and a
DevTools port; playwright attaches to it over the DevTools protocol (`connect_over_cdp`),
so no browser is ever downloaded. `screen_text` reads what the console drew: a script run
before the page's own records every byte the console's websocket brings, since xterm.js
draws on a canvas and the DOM holds no text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
)

#: Keeps what the console's websocket delivers, as text, in `window.__screen`.
RECORD_SCREEN = """
window.__screen = "";
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    const decoder = new TextDecoder();
    this.addEventListener("message", (e) => {
      if (typeof e.data !== "string") window.__screen += decoder.decode(e.data, {stream: true});
    });
  }
};
"""
_ANSI = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])")


def available() -> bool:
    return Path(CHROMIUM).exists()


@contextmanager
def chromium() -> Iterator[object]:
    """A playwright Browser attached to a fresh headless chromium (closed afterwards)."""
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="dc-chromium-"))
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, f"chromium exited {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
            try:
                yield browser
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def screen_text(page) -> str:
    """Everything the console has drawn so far, without terminal control sequences."""
    return _ANSI.sub("", page.evaluate("window.__screen"))


def wait_for_text(page, text: str, timeout: float = 30.0, since: int = 0) -> int:
    """Wait until the console has drawn `text` (after position `since`); returns where."""
    deadline = time.monotonic() + timeout
    while True:
        drawn = screen_text(page)
        found = drawn.find(text, since)
        if found >= 0:
            return found
        assert time.monotonic() < deadline, f"the page never showed {text!r}; it showed: {drawn[-600:]!r}"
        time.sleep(0.2)
