"""Generic webhooks: a JSON POST on deploy start, finish or failure, and each final watch verdict.

`Notifier(urls, environment)` is a subscriber that never blocks or fails a deploy:
calling it only folds the event into a `DeployView` and, for the events that are
announced, puts a payload on a queue. Each URL has its own daemon thread that posts
with a short timeout (2 s), so a hanging receiver delays only its own later posts and
never the deploy or the other receivers. A failed post becomes a warning `Notice`
(kept in `notices`, passed to `on_notice` if given, and returned by `close`); the URL
in it is shortened to scheme, host and port because webhook URLs often carry tokens, and
the error is scrubbed of the URL's path and query too (an exception may quote them).

The payload is `{"event": kind, "environment", "deploy_id", "summary", ...the event's
fields}` (an event field whose name is taken, WatchVerdict's own `summary`, is sent as
`event_summary`); `summary` is one line for a person, e.g.

    lab: alice deployed ab12cd3..ef4501a (3 commits) to 50 hosts in 4.2 s; checkouts ok
    lab: alice's deploy of ef4501a failed on 3 of 50 hosts (web007: exit 1, +2 more)

Which events are announced: DeployStarted ("deploy-started"), DeployDone
("deploy-done", with `result` ok, partial, failed or aborted: anything but ok is the
failure form) and WatchVerdict with `final` set ("watch-verdict").
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from console.core.events import DeployDone, DeployStarted, Event, Notice, WatchVerdict
from console.core.progress import DeployView
from console.core.text import safe_url, short

_STOP = object()
#: Posts waiting per URL beyond which new ones are dropped (with a notice).
MAX_PENDING = 100


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def scrub(error: str, url: str) -> str:
    """A failed post's error without the URL, its path, query or user (an exception may
    quote any of them: `URL can't contain control characters. '/T0K EN'`)."""
    parts = urlsplit(url)
    for piece in sorted(
        (url, parts.path, parts.query, parts.fragment, parts.username or "", parts.password or ""),
        key=len,
        reverse=True,
    ):
        if piece.strip("/"):
            error = error.replace(piece, "…")
    return error


def summary(environment: str, event: Event, view: DeployView) -> str:
    """The one-line human summary of an announced event (the view has folded it in)."""
    s = view.started
    who = s.user if s else "someone"
    target = short(s.revision) if s else event.deploy_id
    hosts = len(s.hosts) if s else len(view.hosts)
    if isinstance(event, DeployStarted):
        if event.action == "switch":
            text = f"{who} is switching {_plural(hosts, 'host')} to release {event.release} ({target})"
        else:
            text = f"{who} is deploying {_range(s)} to {_plural(hosts, 'host')}"
        if event.override:
            text += f" (override: {_clip(event.override)})"
        return f"{environment}: {text}"
    if isinstance(event, DeployDone):
        verb = "switch" if s and s.action == "switch" else "deploy"
        if event.result == "ok":
            did = (
                f"switched {_plural(hosts, 'host')} to {target}"
                if verb == "switch"
                else (f"deployed {_range(s)} to {_plural(hosts, 'host')}")
            )
            text = f"{who} {did} in {_seconds(event.seconds)}"
            verdicts = ", ".join(f"{v.metric} {v.verdict}" for v in view.verdicts.values())
            return f"{environment}: {text}" + (f"; {verdicts}" if verdicts else "")
        failed = dict(event.hosts_failed) or view.failed_hosts()
        head = f"{environment}: {who}'s {verb} of {target}"
        if event.result == "aborted":
            text = f"{head} was aborted after {_seconds(event.seconds)}"
            if failed:
                text += f"; {len(failed)} of {hosts} hosts failed"
            return text + (f": {_clip(event.message)}" if event.message else "")
        if failed:
            (host, reason), more = next(iter(failed.items())), len(failed) - 1
            detail = f"{host}: {_clip(reason)}" + (f", +{more} more" if more else "")
            return f"{head} failed on {len(failed)} of {hosts} hosts ({detail})"
        return f"{head} failed" + (f": {_clip(event.message, 100)}" if event.message else "")
    if isinstance(event, WatchVerdict):
        after = f"after {who}'s {s.action if s else 'deploy'} of {target}"
        dry = " (dry run)" if event.dry_run else ""
        return f"{environment}: {event.metric} {event.verdict}{dry} {after}: {event.summary}"
    return f"{environment}: {event.kind} {event.deploy_id}"


def _range(s: DeployStarted | None) -> str:
    if s is None:
        return "?"
    commits = f" ({_plural(s.commits, 'commit')})" if s.commits else ""
    if s.previous_revision and s.previous_revision != s.revision:
        return f"{short(s.previous_revision)}..{short(s.revision)}{commits}"
    return f"{short(s.revision)}{commits}"


def payload(environment: str, event: Event, view: DeployView) -> dict[str, Any]:
    """The JSON body of one webhook post."""
    data: dict[str, Any] = {
        "event": event.kind,
        "environment": environment,
        "deploy_id": event.deploy_id,
        "summary": summary(environment, event, view),
    }
    for key, value in dataclasses.asdict(event).items():
        if key != "deploy_id":
            data[f"event_{key}" if key in data else key] = value  # WatchVerdict.summary -> event_summary
    return data


class Notifier:
    """A subscriber that posts webhooks in the background (see module doc)."""

    def __init__(
        self,
        urls: Iterable[str],
        environment: str,
        *,
        timeout: float = 2.0,
        on_notice: Callable[[Notice], None] | None = None,
    ) -> None:
        self.urls = tuple(urls)
        self.environment = environment
        self.timeout = timeout
        self.on_notice = on_notice
        self.notices: list[Notice] = []
        self.sent = 0
        self._views: OrderedDict[str, DeployView] = OrderedDict()
        self._lock = threading.RLock()  # re-entered when on_notice feeds an event back
        self._last_deploy = ""
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._opener = urllib.request.build_opener()

    # -- the subscriber ----------------------------------------------------------

    def record(self, event: Event) -> None:
        """Fold the event in and queue its posts; returns at once, never raises."""
        try:
            with self._lock:
                view = self._views.get(event.deploy_id)
                if view is None:
                    view = self._views[event.deploy_id] = DeployView()
                    while len(self._views) > 8:
                        self._views.popitem(last=False)
                view.apply(event)
                self._last_deploy = event.deploy_id
                if not self.urls or not self._announced(event):
                    return
                body = json.dumps(payload(self.environment, event, view), ensure_ascii=False).encode()
                for url in self.urls:
                    self._enqueue(url, event.deploy_id, body)
        except Exception as exc:  # noqa: BLE001 - a notifier bug must never fail a deploy
            self._notice(event.deploy_id, f"webhook notification skipped: {type(exc).__name__}: {exc}")

    __call__ = record

    @staticmethod
    def _announced(event: Event) -> bool:
        if isinstance(event, (DeployStarted, DeployDone)):
            return True
        return isinstance(event, WatchVerdict) and event.final

    def _enqueue(self, url: str, deploy_id: str, body: bytes) -> None:
        q = self._queues.get(url)
        if q is None or not self._threads[url].is_alive():
            q = self._queues[url] = queue.Queue()
            thread = threading.Thread(target=self._worker, args=(url, q), name=f"webhook {safe_url(url)}", daemon=True)
            self._threads[url] = thread
            thread.start()
        if q.qsize() >= MAX_PENDING:
            self._notice(deploy_id, f"webhook {safe_url(url)}: {MAX_PENDING} posts pending, dropped one")
            return
        q.put((deploy_id, body))

    # -- the posting threads -----------------------------------------------------

    def _worker(self, url: str, q: queue.Queue[Any]) -> None:
        while True:
            item = q.get()
            try:
                if item is _STOP:
                    return
                deploy_id, body = item
                error = self._post(url, body)
                if error:
                    self._notice(deploy_id, f"webhook {safe_url(url)} failed: {scrub(error, url)}")
                else:
                    with self._lock:
                        self.sent += 1
            finally:
                q.task_done()

    def _post(self, url: str, body: bytes) -> str:
        """Post once; returns what went wrong, or '' on a 2xx answer."""
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "deploy-console"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
                return ""
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            reason = exc.reason
            return f"{reason}" if not isinstance(reason, OSError) else (reason.strerror or str(reason))
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - connection reset, bad status line, ...
            return f"{type(exc).__name__}: {exc}"

    def _notice(self, deploy_id: str, message: str) -> None:
        notice = Notice(deploy_id, message=message, level="warning")
        with self._lock:
            self.notices.append(notice)
        if self.on_notice is not None:
            try:
                self.on_notice(notice)
            except Exception:  # noqa: BLE001 - a failing notice subscriber is not the notifier's to report
                pass

    # -- the end of a deploy -----------------------------------------------------

    def close(self, timeout: float = 5.0) -> list[Notice]:
        """Wait up to `timeout` seconds for pending posts, stop the threads, and return
        every notice so far (failed posts, and posts still pending at the deadline)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._threads.items())
            self._threads.clear()
            queues = dict(self._queues)
            self._queues.clear()
        for url, _thread in workers:
            queues[url].put(_STOP)
        for url, thread in workers:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                pending = queues[url].qsize()
                self._notice(
                    self._last_deploy,
                    f"webhook {safe_url(url)}: gave up waiting after {timeout:g} s "
                    f"({_plural(pending, 'post')} not sent)",
                )
        with self._lock:
            return list(self.notices)
