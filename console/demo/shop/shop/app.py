"""The shop as a WSGI application: one `Shop` per worker process, loaded from one release.

Everything a release decides is read once when the worker loads it (its REVISION, its
manifest.json, its pages): that is why a deploy reloads gunicorn, whose new workers load
the release `current` points to while the old ones finish the requests they have.
"""

import http
import json
import mimetypes
import os
import re
import sys
import time
import traceback
import urllib.parse

from shop import checkout as checkout_mod
from shop import pages
from shop.catalog import PRODUCTS
from shop.metrics import Metrics

#: The fleet's own checks, not shoppers: never counted in the metrics.
UNCOUNTED = ("/health", "/metrics", "/slow")
MAX_BODY = 64 * 1024
#: The longest /slow may take, in seconds.
MAX_SLOW = 5.0


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
    """The WSGI application of one release (`release_dir`); assets come from `deploy_path/assets`."""

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

    # -- WSGI --------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        start = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        try:
            form = {}
            if method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if not 0 <= length <= MAX_BODY:
                    raise ValueError("body too large")
                body = environ["wsgi.input"].read(length).decode("utf-8", "replace")
                form = dict(urllib.parse.parse_qsl(body))
            query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
            response = self.respond(method, path, form, query)
        except ValueError:
            response = Response(400, "bad request\n")
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = Response(500, "internal error\n")
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("X-Revision", self.revision),
            *response.headers.items(),
        ]
        start_response(f"{response.status} {http.HTTPStatus(response.status).phrase}", headers)
        self.record(path, response.status, time.perf_counter() - start)
        return [] if method == "HEAD" else [response.body]

    # -- routing -----------------------------------------------------------------------------
    def respond(self, method, path, form, query):
        if path == "/health":
            return Response(200, self.revision + "\n")
        if path == "/slow":
            # A request that takes a while, answered by the release that took it: the proof
            # that a reload lets the requests in flight finish on the old workers.
            time.sleep(min(max(float(query.get("seconds", "1")), 0.0), MAX_SLOW))
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
        if path in UNCOUNTED:
            return
        self.metrics.incr("shop_requests_total")
        self.metrics.observe(seconds)
        self.statsd.incr("shop.requests")
        self.statsd.timing("shop.latency", seconds * 1000.0)
        if status >= 500:
            self.metrics.incr("shop_errors_total")
            self.statsd.incr("shop.errors")
