"""The time-bucketed metrics store the StatsD collector writes and every process reads.

One SQLite file (`state_dir/metrics.sqlite`, WAL, so readers never block the writer) holds
one row per StatsD key, type and whole second:

- counters (`c`): `count` is the sum of value / sample rate;
- timers (`ms`): `count` samples, `sum` of their values, and `hist`, a sparse log-bucket
  histogram (JSON `{index: count}`) with at most 1% relative error, which merges exactly
  across seconds, so a p95 over any window is one merge away;
- gauges (`g`): `last` value set in that second;
- heartbeats (`hb`, key ""): one row per second the collector was alive, so a reader can tell
  "no checkouts" (a rate of 0) from "nobody was listening" (no data).

Only the collector writes (`StoreWriter`); `StoreReader` opens the file per call and never
creates it. Rows older than the retention (6 hours) are pruned as the collector goes.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.config.inventory import Inventory

#: Relative accuracy of the timer histogram: every value is stored within 1%.
ACCURACY = 0.01
_GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
#: The histogram index of zero and negative values (a timer cannot be negative).
ZERO_INDEX = -(10**6)
#: Seconds of history kept in the store.
RETENTION = 6 * 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    key   TEXT    NOT NULL,
    type  TEXT    NOT NULL,
    ts    INTEGER NOT NULL,
    count REAL    NOT NULL DEFAULT 0,
    sum   REAL    NOT NULL DEFAULT 0,
    last  REAL,
    hist  TEXT,
    PRIMARY KEY (key, type, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS buckets_ts ON buckets (ts);
"""


def store_path(inventory: Inventory) -> Path:
    """Where the StatsD collector of this inventory keeps its store."""
    return inventory.state_dir / "metrics.sqlite"


def bucket_index(value: float) -> int:
    """The log-histogram bucket a timer value falls in."""
    if value <= 1e-9:
        return ZERO_INDEX
    return math.ceil(math.log(value) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The value a bucket stands for: within `ACCURACY` of every value in it."""
    if index == ZERO_INDEX:
        return 0.0
    return 2 * _GAMMA**index / (_GAMMA + 1)


def quantile(hist: dict[int, float], q: float) -> float | None:
    """The q-quantile (nearest rank) of a histogram, or None if it is empty."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank - 1e-9:
            return bucket_value(index)
    return bucket_value(max(hist))


@dataclass
class Aggregate:
    """What arrived for one key, type and second (a delta, until it is written)."""

    count: float = 0.0
    sum: float = 0.0
    last: float | None = None
    hist: dict[int, float] = field(default_factory=dict)


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class StoreWriter:
    """The collector's side: adds deltas to buckets, records heartbeats, prunes."""

    def __init__(self, path: str | Path, retention: float = RETENTION) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention = retention
        self.conn = _connect(self.path, create=True)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(_SCHEMA)
        self._pruned = 0.0

    def write(self, deltas: dict[tuple[str, str, int], Aggregate], alive: list[int]) -> None:
        """Add `deltas` to their buckets and mark the seconds in `alive`, in one transaction."""
        with self.conn:
            for (key, kind, ts), agg in deltas.items():
                if kind == "ms":
                    row = self.conn.execute(
                        "SELECT hist FROM buckets WHERE key=? AND type=? AND ts=?", (key, kind, ts)
                    ).fetchone()
                    hist = dict(agg.hist)
                    if row and row[0]:
                        for index, n in json.loads(row[0]).items():
                            hist[int(index)] = hist.get(int(index), 0.0) + n
                    hist_text = json.dumps(hist, separators=(",", ":"))
                else:
                    hist_text = None
                self.conn.execute(
                    "INSERT INTO buckets (key, type, ts, count, sum, last, hist) VALUES (?,?,?,?,?,?,?) "
                    "ON CONFLICT (key, type, ts) DO UPDATE SET count = count + excluded.count, "
                    "sum = sum + excluded.sum, last = coalesce(excluded.last, last), "
                    "hist = coalesce(excluded.hist, hist)",
                    (key, kind, ts, agg.count, agg.sum, agg.last, hist_text),
                )
            for ts in alive:
                self.conn.execute(
                    "INSERT INTO buckets (key, type, ts, count) VALUES ('', 'hb', ?, 1) "
                    "ON CONFLICT (key, type, ts) DO NOTHING",
                    (ts,),
                )

    def prune(self, now: float, every: float = 60.0) -> None:
        """Delete rows older than the retention, at most once per `every` seconds."""
        if now - self._pruned < every:
            return
        self._pruned = now
        with self.conn:
            self.conn.execute("DELETE FROM buckets WHERE ts < ?", (int(now - self.retention),))

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True)
class Row:
    ts: int
    count: float
    sum: float
    last: float | None
    hist: dict[int, float] | None


class StoreReader:
    """Any process's side: reads buckets; a missing store reads as no data."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        if not self.path.exists():
            return []
        try:
            conn = _connect(self.path, create=False)
        except sqlite3.Error:
            return []
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def rows(self, key: str, kind: str, first: int, last: int) -> list[Row]:
        """The buckets of `key` and `kind` for the seconds first..last (inclusive)."""
        out = []
        for ts, count, total, value, hist in self._query(
            "SELECT ts, count, sum, last, hist FROM buckets WHERE key=? AND type=? AND ts BETWEEN ? AND ? ORDER BY ts",
            (key, kind, first, last),
        ):
            parsed = {int(k): v for k, v in json.loads(hist).items()} if hist else None
            out.append(Row(ts, count, total, value, parsed))
        return out

    def alive(self, first: int, last: int) -> set[int]:
        """The seconds in first..last during which the collector was running."""
        return {
            r[0]
            for r in self._query(
                "SELECT ts FROM buckets WHERE key='' AND type='hb' AND ts BETWEEN ? AND ?", (first, last)
            )
        }

    def has(self, key: str, kind: str) -> bool:
        """Whether the store holds any bucket of this key and kind."""
        return bool(self._query("SELECT 1 FROM buckets WHERE key=? AND type=? LIMIT 1", (key, kind)))

    def keys(self) -> list[tuple[str, str]]:
        """Every (key, type) in the store, for people looking for the right StatsD key."""
        return [
            (k, t)
            for k, t in self._query("SELECT DISTINCT key, type FROM buckets WHERE type != 'hb' ORDER BY key, type", ())
        ]
