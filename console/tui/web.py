"""`deploy-console --web`: the same console, served to a browser by textual-serve.

textual-serve starts one console process per browser tab (`python -m console -i INVENTORY`,
driven through Textual's web driver) and relays keys and screen over a websocket, so the
page is the console itself: same keys, same dialogs, same engine underneath.

A console in a browser can deploy, so it is guarded:
- It binds loopback (127.0.0.1) unless told otherwise. Every request there must name a
  loopback host in its Host header: a page elsewhere cannot reach it by rebinding a name of
  its own to 127.0.0.1 (DNS rebinding).
- Any other bind needs a token: one made at start (printed once, as Jupyter does) or
  `$DEPLOY_CONSOLE_TOKEN` (which a loopback bind then requires too). The page presents it once as `?token=...`; the server answers with
  an HttpOnly, SameSite=Strict cookie and a redirect to the same page without it, so the
  token leaves the address bar and the history. Every request without the cookie is refused.
- The websocket accepts only its own page's Origin: another site's page cannot open a
  console in a visitor's browser (cross-site websocket hijacking).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from textual_serve.server import Server

from console.config.inventory import load_inventory
from console.core.errors import ConsoleError

#: The cookie that carries the token after the page presented it once.
COOKIE = "deploy_console_token"
#: Where the token may come from instead of being made at start.
TOKEN_ENV = "DEPLOY_CONSOLE_TOKEN"
DEFAULT_BIND = "127.0.0.1:8000"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_bind(bind: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:PORT` for IPv6) as (host, port), or a one-line ConsoleError."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConsoleError(f"--bind {bind!r}: expected HOST:PORT, e.g. {DEFAULT_BIND}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) can be reached from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebConsole(Server):
    """textual-serve's server, with the guards of the module doc."""

    def __init__(self, inventory: Path, host: str, port: int, token: str | None) -> None:
        command = shlex.join([sys.executable, "-m", "console", "-i", str(inventory)])
        super().__init__(command, host=host, port=port, title=f"deploy console: {inventory.name}")
        self.token = token
        self.loopback = is_loopback(host)
        self.hosts = {f"{name}:{port}" for name in (*LOOPBACK_NAMES, host)}

    @property
    def url(self) -> str:
        """Where a person opens the console (with the token, when one is needed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Host (loopback binds), Origin (the websocket) and the token (other binds)."""
        if self.loopback and request.host not in self.hosts:
            raise web.HTTPForbidden(text=f"unexpected Host {request.host!r}: open {self.url}")
        if request.path == "/ws" and request.headers.get("Origin") != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="the console's websocket accepts only its own page")
        if self.token is not None:
            given = request.query.get("token")
            if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
                if request.path == "/":
                    query = {k: v for k, v in request.query.items() if k != "token"}
                    response = web.HTTPSeeOther(request.rel_url.with_query(query))
                    response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
                    raise response
            elif not hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self.token.encode()):
                raise web.HTTPForbidden(text="this console needs its token: open the address deploy-console printed")
        return await handler(request)

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        # The page's websocket address is the one the browser used (whatever the bind).
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def on_startup(self, app: web.Application) -> None:
        print(f"deploy console on {self.url}  (Ctrl+C stops serving; running deploys go on)", flush=True)


def web_token(host: str, given: str | None) -> str | None:
    """The token a console bound to `host` requires: `given`, else a new one unless loopback."""
    if given:
        return given
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def serve(inventory: Path, bind: str = DEFAULT_BIND) -> None:
    """Serve the console of `inventory` on `bind` until Ctrl+C (see the module doc)."""
    host, port = parse_bind(bind)
    load_inventory(inventory)  # a mistake in it is one line now, not in every browser tab
    token = web_token(host, os.environ.pop(TOKEN_ENV, None))  # not handed down to the consoles
    WebConsole(inventory, host, port, token).serve()
