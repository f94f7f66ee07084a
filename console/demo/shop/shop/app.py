"""The shop as seen over HTTP: one `Shop` per worker, loaded from one release directory.

Everything a release decides is read once when the worker starts (its REVISION, its
manifest.json): that is why a deploy restarts the workers gracefully.
"""

import json
import mimetypes
import os
import re
import sys
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler

from shop import checkout as checkout_mod
from shop import pages
from shop.catalog import PRODUCTS
from shop.metrics import Metrics

_PRODUCT = re.compile(r"^/product/([0-9]{1,6})$")
_UNCOUNTED = ("/health", "/metrics")
MAX_BODY = 64 * 1024


class LoadError(Exception):
    """The release cannot be served (missing REVISION or manifest, or a manifest entry)."""


class Response:
    __slots__ = ("status", "content_type", "body", "headers")

    def __init__(self, status, body=b"", content_type="text/plain; charset=utf-8", headers=None):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.headers = headers or {}


def load_release(release_dir):
    """(revision, manifest) of a release directory; raises LoadError naming the file."""
    try:
        with open(os.path.join(release_dir, "REVISION"), encoding="utf-8") as f:
            revision = f.read().strip()
    except OSError as exc:
        raise LoadError(f"{release_dir}/REVISION: cannot read: {exc.strerror}") from None
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise LoadError(f"{release_dir}/REVISION: expected a full 40-character commit id, got {revision[:60]!r}")
    try:
        with open(os.path.join(release_dir, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise LoadError(f"{release_dir}/manifest.json: cannot read: {exc}") from None
    if not isinstance(manifest, dict):
        raise LoadError(f"{release_dir}/manifest.json: expected an object of logical path -> URL")
    return revision, manifest


class Shop:
    def __init__(self, release_dir, deploy_path, statsd):
        self.release_dir = release_dir
        self.assets_root = os.path.realpath(os.path.join(deploy_path, "assets"))
        self.revision, self.manifest = load_release(release_dir)
        self.statsd = statsd
        self.metrics = Metrics(self.revision)
        # Render every page once now: a manifest that lacks an asset fails the load, not a shopper.
        self._pages = {"/": pages.index(self.asset)}
        for pid in PRODUCTS:
            self._pages[f"/product/{pid}"] = pages.product(self.asset, pid)

    def asset(self, logical):
        try:
            return self.manifest[logical]
        except KeyError:
            raise LoadError(f"{self.release_dir}/manifest.json: no entry for asset {logical!r}") from None

    # -- routing ---------------------------------------------------------------------------
    def respond(self, method, path, form):
        if path == "/health":
            return Response(200, self.revision + "\n")
        if path == "/metrics":
            return Response(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/checkout":
            if method != "POST":
                return Response(405, "use POST\n", headers={"Allow": "POST"})
            return self.checkout(form)
        if method not in ("GET", "HEAD"):
            return Response(405, "use GET\n", headers={"Allow": "GET, HEAD"})
        if path.startswith("/assets/"):
            return self.static(path[len("/assets/"):])
        page = self._pages.get(path)
        if page is None:
            return Response(404, "not found\n")
        return Response(200, page, "text/html; charset=utf-8")

    def checkout(self, form):
        try:
            order = checkout_mod.checkout(form)
        except checkout_mod.CheckoutError as exc:
            return Response(400, json.dumps({"error": str(exc)}) + "\n", "application/json")
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.metrics.incr("shop_checkout_failures_total")
            self.statsd.incr("shop.checkout_failures")
            return Response(500, json.dumps({"error": "checkout failed"}) + "\n", "application/json")
        self.metrics.incr("shop_checkouts_total")
        self.statsd.incr("shop.checkouts")
        return Response(200, json.dumps(order) + "\n", "application/json")

    def static(self, rel):
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            return Response(404, "not found\n")
        full = os.path.realpath(os.path.join(self.assets_root, *parts))
        if not full.startswith(self.assets_root + os.sep):
            return Response(404, "not found\n")
        try:
            with open(full, "rb") as f:
                data = f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return Response(404, "not found\n")
        kind = mimetypes.guess_type(full)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "image/svg+xml"):
            kind += "; charset=utf-8"
        return Response(200, data, kind, {"Cache-Control": "public, max-age=31536000, immutable"})

    # -- accounting --------------------------------------------------------------------------
    def record(self, path, status, seconds):
        if path in _UNCOUNTED:
            return
        self.metrics.incr("shop_requests_total")
        self.metrics.observe(seconds)
        self.statsd.incr("shop.requests")
        self.statsd.timing("shop.latency", seconds * 1000.0)
        if status >= 500:
            self.metrics.incr("shop_errors_total")
            self.statsd.incr("shop.errors")


def make_handler(shop):
    """A request handler class bound to `shop`. One request per connection (HTTP/1.0), so a
    worker that is told to stop has no idle keep-alive connections to wait for."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "shop/1"
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            self._serve("GET")

        def do_HEAD(self):
            self._serve("HEAD")

        def do_POST(self):
            self._serve("POST")

        def _serve(self, method):
            start = time.perf_counter()
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            try:
                form = {}
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    if not 0 <= length <= MAX_BODY:
                        raise ValueError("body too large")
                    body = self.rfile.read(length).decode("utf-8", "replace")
                    form = dict(urllib.parse.parse_qsl(body))
                response = shop.respond(method, path, form)
            except ValueError:
                response = Response(400, "bad request\n")
            except Exception:
                traceback.print_exc(file=sys.stderr)
                response = Response(500, "internal error\n")
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                self.send_header("X-Revision", shop.revision)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(response.body)
            except OSError:
                pass  # the shopper went away
            shop.record(path, response.status, time.perf_counter() - start)

        def log_message(self, format, *args):
            pass  # no access log: errors are printed with their traceback

    return Handler
