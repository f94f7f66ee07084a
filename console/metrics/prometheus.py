"""Key metrics from a Prometheus server, over its HTTP API (`/api/v1/query`, `/api/v1/query_range`).

A key metric's `query` is either
- a bare selector such as `shop_checkouts_total` or `shop_request_duration_seconds{job="shop"}`:
  the source writes the PromQL for the metric's `stat` (rate per minute, p95 or mean of a
  histogram in ms when its name ends in `_seconds`, gauge), summed over every series; or
- any PromQL. With `$window` in it (e.g. `sum(rate(shop_checkouts_total[$window])) * 60`) it is
  evaluated once at the window's end with `$window` set to the window's length; without, it is
  evaluated across the window and averaged (gauge: the last value).

Every failure (unreachable, HTTP error, not JSON, a PromQL error) is a one-line `ConsoleError`
naming the URL.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from console.core.errors import ConsoleError
from console.metrics.source import MetricSource, Point, grid

if TYPE_CHECKING:
    from console.config.inventory import KeyMetric

_SELECTOR = re.compile(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^{}]*\})?\s*\Z")


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


def expression(metric: KeyMetric, window: float) -> tuple[str, bool]:
    """The PromQL for `metric` over `window` seconds, and whether it is windowed (evaluate
    once at the end) rather than evaluated across the window."""
    query = metric.query
    w = _duration(window)
    if "$window" in query:
        return query.replace("$window", w), True
    match = _SELECTOR.match(query)
    if not match:
        return query, False
    name, labels = match.group(1), match.group(2) or ""
    if metric.stat == "rate":
        return f"sum(rate({name}{labels}[{w}])) * 60", True
    if metric.stat == "gauge":
        return f"sum(last_over_time({name}{labels}[{w}]))", True
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    scale = " * 1000" if base.endswith("_seconds") else ""
    if metric.stat == "p95":
        return f"histogram_quantile(0.95, sum by (le) (rate({base}_bucket{labels}[{w}]))){scale}", True
    return f"(sum(rate({base}_sum{labels}[{w}])) / sum(rate({base}_count{labels}[{w}]))){scale}", True


class PrometheusSource(MetricSource):
    """Key metrics from the Prometheus server at `base_url` (e.g. http://127.0.0.1:9090)."""

    def __init__(self, base_url: str, timeout: float = 5.0, min_window: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        #: the shortest rate window of a graph point: a rate needs two scrapes inside it
        self.min_window = min_window

    def value(self, metric: KeyMetric, start: float, end: float) -> float | None:
        if end <= start:
            return None
        expr, windowed = expression(metric, end - start)
        if windowed:
            data = self._get("/api/v1/query", {"query": expr, "time": f"{end:.3f}"})
            return _combine(metric.stat, [_number(r["value"][1]) for r in _results(data, "vector")])
        step = max(1.0, (end - start) / 60)
        points = self._range(metric, expr, start + step, end, step)
        values = [v for _, v in points if v is not None]
        if not values:
            return None
        return values[-1] if metric.stat == "gauge" else sum(values) / len(values)

    def series(self, metric: KeyMetric, start: float, end: float, step: float) -> list[Point]:
        times = grid(start, end, step)
        if not times:
            return []
        expr, _ = expression(metric, max(step, self.min_window))
        # a point stands for the step that starts at t, so Prometheus evaluates it at its end
        found = dict(self._range(metric, expr, times[0] + step, times[-1] + step, step))
        return [(t, found.get(round(t + step, 3))) for t in times]

    def _range(self, metric: KeyMetric, expr: str, start: float, end: float, step: float) -> list[Point]:
        data = self._get(
            "/api/v1/query_range",
            {
                "query": expr,
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": f"{step:g}",
            },
        )
        by_time: dict[float, list[float | None]] = {}
        for result in _results(data, "matrix"):
            for ts, text in result.get("values", []):
                by_time.setdefault(round(float(ts), 3), []).append(_number(text))
        return sorted((t, _combine(metric.stat, vs)) for t, vs in by_time.items())

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        full = f"{url}?{urllib.parse.urlencode(params)}"
        where = f"Prometheus {url} (query {params.get('query', '')!r})"
        try:
            with urllib.request.urlopen(full, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise ConsoleError(f"{where}: HTTP {exc.code}: {_api_error(exc.read()) or exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConsoleError(f"{where}: cannot connect: {_line(str(reason))}") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise ConsoleError(
                f"{where}: the answer is not JSON: {_line(body[:80].decode('utf-8', 'replace'))}"
            ) from None
        if not isinstance(data, dict) or data.get("status") != "success":
            raise ConsoleError(f"{where}: {_api_error(body) or 'the answer is not a success'}")
        return data.get("data") or {}


def _results(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    if data.get("resultType") == "scalar":
        return [{"value": data["result"], "values": [data["result"]]}]
    if data.get("resultType") not in (kind, None):
        return []
    return list(data.get("result") or [])


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _combine(stat: str, values: list[float | None]) -> float | None:
    """Several series of one query: rates and gauges add up, latencies take the worst."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return sum(present) if stat in ("rate", "gauge") else max(present)


def _api_error(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return _line(body[:120].decode("utf-8", "replace"))
    if isinstance(data, dict):
        return _line(f"{data.get('errorType', 'error')}: {data.get('error', '')}")
    return ""


def _line(text: str) -> str:
    return " ".join(text.split())
