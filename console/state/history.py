"""Every deploy, every host's result, every watch verdict and every lock override, in SQLite.

`History(state_dir)` keeps `state_dir/history.sqlite` (WAL mode, so the detached deploy
process writes while any number of consoles read). `History.record` is a subscriber: it
writes as events arrive (DeployStarted inserts the deploy, HostDone/HostFailed upsert
that host's row, PhaseDone keeps the time per phase, DeployDone closes the deploy with its
result, WatchVerdict inserts a verdict), each event in its own transaction, so a deploy
killed half way leaves a truthful partial record: a deploy without a result whose
process is gone is shown as `interrupted`.

The state directory is shared by every operator and every process on one deploy host;
it and every file in it are private to the deploying user (0700 / 0600, `state.files`).

A new history is made whole (schema and all) and then linked into place, so an existing
`history.sqlite` is never empty: an empty, truncated or garbage one is damaged, and is
named as such with how to recover, never silently replaced by a new empty history.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from console.core.errors import ConsoleError
from console.core.events import (
    DeployDone,
    DeployStarted,
    Event,
    HostDone,
    HostFailed,
    HostProgress,
    PhaseDone,
    WatchVerdict,
)
from console.core.progress import NOT_SWITCHED, DeployView, HostView
from console.core.text import clean, local_time, short
from console.state.files import pid_alive, private_dir, private_file

#: 2: the revision columns take the events' names (from_revision, to_revision before).
#: 3: `deploys.activated`, when the first host was switched (the deploy's marker on the graphs).
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deploys (
    id            TEXT PRIMARY KEY,
    environment   TEXT NOT NULL,
    action        TEXT NOT NULL,          -- deploy or switch
    user          TEXT NOT NULL,
    override      TEXT,                   -- the --override reason, if any
    release       TEXT,
    previous_revision TEXT,
    revision      TEXT,
    ref           TEXT,                   -- the ref asked for (branch, tag, SHA); NULL: the branch
    strategy      TEXT,
    rolling       INTEGER NOT NULL DEFAULT 0,
    commits       INTEGER NOT NULL DEFAULT 0,
    hosts         INTEGER NOT NULL DEFAULT 0,
    pid           INTEGER,
    started       REAL NOT NULL,
    activated     REAL,                   -- when the first host was switched; NULL: none was
    ended         REAL,
    seconds       REAL,
    result        TEXT,                   -- ok, partial, failed, aborted; NULL while running
    message       TEXT NOT NULL DEFAULT '',
    phases        TEXT NOT NULL DEFAULT '{}'  -- JSON: phase -> seconds
);
CREATE INDEX IF NOT EXISTS deploys_started ON deploys (started);
CREATE TABLE IF NOT EXISTS host_results (
    deploy_id  TEXT NOT NULL REFERENCES deploys (id),
    host       TEXT NOT NULL,
    state      TEXT NOT NULL,             -- a progress.HOST_STATES name
    phase      TEXT NOT NULL DEFAULT '',  -- the last phase; the failed one if failed
    reason     TEXT NOT NULL DEFAULT '',
    exit_code  INTEGER,
    output     TEXT NOT NULL DEFAULT '',
    seconds    TEXT NOT NULL DEFAULT '{}',  -- JSON: phase -> seconds
    bytes      INTEGER NOT NULL DEFAULT 0,
    ok         INTEGER NOT NULL DEFAULT 0,  -- 1 when DeployDone named the host ok
    PRIMARY KEY (deploy_id, host)
);
CREATE TABLE IF NOT EXISTS verdicts (
    id        INTEGER PRIMARY KEY,
    deploy_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    verdict   TEXT NOT NULL,
    summary   TEXT NOT NULL,
    baseline  REAL,
    current   REAL,
    change    REAL,
    ts        REAL NOT NULL,
    dry_run   INTEGER NOT NULL DEFAULT 0,
    final     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS verdicts_deploy ON verdicts (deploy_id);
CREATE TABLE IF NOT EXISTS lock_audit (
    id          INTEGER PRIMARY KEY,
    ts          REAL NOT NULL,
    environment TEXT NOT NULL,
    who         TEXT NOT NULL,
    action      TEXT NOT NULL,            -- lock, unlock, force-unlock
    detail      TEXT NOT NULL DEFAULT ''
);
"""

#: What brings a database of an older SCHEMA_VERSION (the key) up to date.
_UPGRADES: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE deploys RENAME COLUMN from_revision TO previous_revision",
        "ALTER TABLE deploys RENAME COLUMN to_revision TO revision",
    ),
    2: ("ALTER TABLE deploys ADD COLUMN activated REAL",),
}


@dataclass
class HostRecord:
    """One host's result in one deploy."""

    host: str
    state: str
    phase: str = ""
    reason: str = ""
    exit_code: int | None = None
    output: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    bytes: int = 0
    ok: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuditRecord:
    """One lock action: who took, released or forced the lock of an environment."""

    ts: float
    environment: str
    who: str
    action: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": local_time(self.ts)}


@dataclass(frozen=True)
class Marker:
    """A deploy or switch as a line on the metric graphs (Deployinator's deploy lines).

    `kind` says what the graphs should tell apart: `deploy` (its code went live on some
    hosts: ok, partial, still running, or failed after the first switch), `failed` (no host
    was switched: nothing changed for users) and `switch` (the fleet went back to an
    earlier release). `ts` is when the first host was switched, or, for a deploy that
    switched none, when it ended (or started, while it runs)."""

    ts: float
    kind: str
    deploy_id: str
    revision: str | None
    user: str
    result: str | None

    @classmethod
    def of(cls, d: DeployRecord) -> Marker | None:
        """The marker of a deploy or switch (None for a deploy that has switched nothing yet)."""
        if d.action == "switch":
            kind = "switch"
        elif d.activated is not None:
            kind = "deploy"
        elif d.result is not None:
            kind = "failed"
        else:
            return None
        ts = d.activated if d.activated is not None else (d.ended if d.ended is not None else d.started)
        return cls(ts, kind, d.id, d.revision, d.user, d.result)

    @property
    def label(self) -> str:
        """`ab12cd3 alice ok`: what the graph writes beside the line."""
        return " ".join(p for p in (short(self.revision), self.user, self.result or "running") if p)


@dataclass
class DeployRecord:
    """One deploy or switch. `hosts` is filled by `History.get` only; `verdicts` by
    `History.get` and `History.deploys`."""

    id: str
    environment: str
    action: str
    user: str
    started: float
    override: str | None = None
    release: str | None = None
    previous_revision: str | None = None
    revision: str | None = None
    ref: str | None = None
    strategy: str | None = None
    rolling: bool = False
    commits: int = 0
    host_count: int = 0
    pid: int | None = None
    activated: float | None = None
    ended: float | None = None
    seconds: float | None = None
    result: str | None = None
    message: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    hosts: list[HostRecord] = field(default_factory=list)
    verdicts: list[WatchVerdict] = field(default_factory=list)

    @property
    def state(self) -> str:
        """The result, or `running` / `interrupted` (no result and its process is gone)."""
        if self.result:
            return self.result
        return "running" if self.pid and pid_alive(self.pid) else "interrupted"

    @property
    def failed_hosts(self) -> dict[str, str]:
        return {h.host: h.reason for h in self.hosts if h.state == "failed"}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for `invoke history --json`."""
        data = asdict(self)
        data["hosts"] = [h.to_dict() for h in self.hosts]
        data["verdicts"] = [asdict(v) for v in self.verdicts]
        data["state"] = self.state
        return data


_DEPLOY_COLUMNS = (
    "id, environment, action, user, started, override, release, previous_revision, revision, ref, "
    "strategy, rolling, commits, hosts, pid, activated, ended, seconds, result, message, phases"
)


def _deploy(row: sqlite3.Row) -> DeployRecord:
    return DeployRecord(
        id=row["id"],
        environment=row["environment"],
        action=row["action"],
        user=row["user"],
        started=row["started"],
        override=row["override"],
        release=row["release"],
        previous_revision=row["previous_revision"],
        revision=row["revision"],
        ref=row["ref"],
        strategy=row["strategy"],
        rolling=bool(row["rolling"]),
        commits=row["commits"],
        host_count=row["hosts"],
        pid=row["pid"],
        activated=row["activated"],
        ended=row["ended"],
        seconds=row["seconds"],
        result=row["result"],
        message=row["message"],
        phases=json.loads(row["phases"] or "{}"),
    )


def _host(row: sqlite3.Row) -> HostRecord:
    return HostRecord(
        host=row["host"],
        state=row["state"],
        phase=row["phase"],
        reason=row["reason"],
        exit_code=row["exit_code"],
        output=row["output"],
        seconds=json.loads(row["seconds"] or "{}"),
        bytes=row["bytes"],
        ok=bool(row["ok"]),
    )


def _verdict(row: sqlite3.Row) -> WatchVerdict:
    """A stored verdict as the event it was recorded from."""
    return WatchVerdict(
        deploy_id=row["deploy_id"],
        metric=row["metric"],
        verdict=row["verdict"],
        summary=row["summary"],
        ts=row["ts"],
        dry_run=bool(row["dry_run"]),
        final=bool(row["final"]),
        baseline=row["baseline"],
        current=row["current"],
        change=row["change"],
    )


class History:
    """The deploy history of one state directory (every environment that shares it).

    Safe to use from any thread and any number of processes; writers wait up to
    `busy_timeout` seconds. Reads open a short connection each. Writes share one
    connection kept open for the object's life: a deploy writes for every host event, and
    closing the last connection to a WAL database checkpoints it, which cost 20 ms a
    write and made history the slowest subscriber on a deploy's critical path.
    """

    def __init__(self, state_dir: Path, *, busy_timeout: float = 10.0) -> None:
        self.state_dir = private_dir(Path(state_dir))
        self.path = self.state_dir / "history.sqlite"
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._views: dict[str, DeployView] = {}
        if not self.path.exists():
            self._create()
        elif self.path.stat().st_size == 0:
            raise self._damaged("it is empty")
        try:
            with self._connect() as db:
                if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                    raise ConsoleError(f"{self.path}: cannot switch the history to WAL mode")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    raise self._damaged("it holds no deploy history schema")
                if version < SCHEMA_VERSION:
                    self._upgrade(db)
        except sqlite3.Error as exc:
            raise self._failure("open", exc) from None

    def _create(self) -> None:
        """A new history with its schema, made in a private temporary file and linked into
        place (if another process made one meanwhile, that one stays)."""
        tmp = self.state_dir / f".history.{os.getpid()}.{time.monotonic_ns()}.tmp"
        private_file(tmp)  # the -wal and -shm files SQLite creates copy the database file's mode
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            finally:
                db.close()
            os.link(tmp, self.path)
        except FileExistsError:
            pass
        except (OSError, sqlite3.Error) as exc:
            raise ConsoleError(
                f"{self.path}: cannot create the history: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)

    def _damaged(self, why: str) -> ConsoleError:
        return ConsoleError(
            f"{self.path}: the history is damaged ({why}); move it aside to start a new one "
            f"(mv {self.path} {self.path}.damaged) or restore it from a backup"
        )

    def _failure(self, doing: str, exc: sqlite3.Error) -> ConsoleError:
        """A SQLite error as one line: a damaged file says so and how to recover."""
        if type(exc) is sqlite3.DatabaseError:  # "file is not a database", "disk image is malformed"
            return self._damaged(str(exc))
        return ConsoleError(f"{self.path}: cannot {doing} the history: {exc}")

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """Bring an older database up to SCHEMA_VERSION in place, in one transaction;
        the version is read again under the write lock, so two processes upgrade once."""
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for old in range(version, SCHEMA_VERSION):
                for statement in _UPGRADES[old]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={max(version, SCHEMA_VERSION)}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- connections -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._failure("open", exc) from None
        db.row_factory = sqlite3.Row
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against process death
        except sqlite3.Error as exc:
            db.close()
            raise self._failure("open", exc) from None
        return db

    def _connect(self) -> _Closing:
        return _Closing(self._open())

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run the statements in one transaction."""
        with self._write_lock:
            try:
                if self._writer is None:
                    self._writer = self._open()
                db = self._writer
                db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        db.execute(sql, params)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                # Closing rolls back whatever the failure left open and frees the write
                # lock for other processes; the next write opens a fresh connection.
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                raise self._failure("write", exc) from None

    def close(self) -> None:
        """Close the write connection (a later write opens it again)."""
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            with self._connect() as db:
                return db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._failure("read", exc) from None

    # -- the subscriber ----------------------------------------------------------

    def record(self, event: Event) -> None:
        """Write one event's effect; a subscriber (`Callable[[Event], None]`)."""
        with self._lock:
            statements = self._statements(event)
            if statements:
                self._write(statements)

    __call__ = record

    def _view(self, deploy_id: str) -> DeployView:
        view = self._views.get(deploy_id)
        if view is None:
            view = self._views[deploy_id] = DeployView()
            if len(self._views) > 16:
                self._views.pop(next(iter(self._views)))
        return view

    def _statements(self, event: Event) -> list[tuple[str, tuple[Any, ...]]]:
        if isinstance(event, DeployStarted):
            self._views.pop(event.deploy_id, None)
            self._view(event.deploy_id).apply(event)
            e = event
            return [
                (
                    "INSERT INTO deploys (id, environment, action, user, override, release, previous_revision, "
                    "revision, ref, strategy, rolling, commits, hosts, pid, started) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET environment=excluded.environment, action=excluded.action, "
                    "user=excluded.user, override=excluded.override, release=excluded.release, "
                    "previous_revision=excluded.previous_revision, revision=excluded.revision, ref=excluded.ref, "
                    "strategy=excluded.strategy, rolling=excluded.rolling, commits=excluded.commits, "
                    "hosts=excluded.hosts, pid=excluded.pid, started=excluded.started",
                    (
                        e.deploy_id,
                        e.environment,
                        e.action,
                        e.user,
                        e.override,
                        e.release,
                        e.previous_revision,
                        e.revision,
                        e.ref,
                        e.strategy,
                        int(e.rolling),
                        e.commits,
                        len(e.hosts),
                        e.pid or None,
                        e.ts,
                    ),
                )
            ]
        if isinstance(event, (HostProgress, HostDone, HostFailed)):
            view = self._view(event.deploy_id)
            if event.host not in view.hosts:
                view.hosts[event.host] = self._stored_host(event.deploy_id, event.host)
            view.apply(event)
            if isinstance(event, HostProgress):
                return []
            statements = [self._host_upsert(event.deploy_id, view.hosts[event.host])]
            if isinstance(event, HostDone) and event.phase == "activate":
                statements.append(
                    (
                        "UPDATE deploys SET activated = ? WHERE id = ? AND activated IS NULL",
                        (event.ts, event.deploy_id),
                    )
                )
            return statements
        if isinstance(event, PhaseDone):
            view = self._view(event.deploy_id)
            view.apply(event)
            return [
                (
                    "UPDATE deploys SET phases = json_set(phases, ?, ?) WHERE id = ?",
                    (f'$."{event.phase}"', event.seconds, event.deploy_id),
                )
            ]
        if isinstance(event, DeployDone):
            view = self._view(event.deploy_id)
            ok = set(event.hosts_ok)
            unswitched = [h for h in view.hosts.values() if h.state in NOT_SWITCHED and h.name not in ok]
            view.apply(event)  # those become unchanged
            statements = [
                (
                    "UPDATE deploys SET ended = ?, seconds = ?, result = ?, message = ? WHERE id = ?",
                    (event.ts, event.seconds, event.result, event.message, event.deploy_id),
                )
            ]
            for host, reason in event.hosts_failed:
                hv = view.hosts.get(host) or self._stored_host(event.deploy_id, host)
                if hv.state != "failed":
                    hv.state, hv.reason = "failed", reason
                    statements.append(self._host_upsert(event.deploy_id, hv))
            for host in event.hosts_ok:
                hv = view.hosts.get(host) or self._stored_host(event.deploy_id, host)
                statements.append(self._host_upsert(event.deploy_id, hv, ok=True))
            failed = {host for host, _ in event.hosts_failed}
            for hv in unswitched:
                if hv.name not in failed:
                    statements.append(self._host_upsert(event.deploy_id, hv))
            return statements
        if isinstance(event, WatchVerdict):
            v = event
            return [
                (
                    "INSERT INTO verdicts (deploy_id, metric, verdict, summary, baseline, current, change, "
                    "ts, dry_run, final) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        v.deploy_id,
                        v.metric,
                        v.verdict,
                        v.summary,
                        v.baseline,
                        v.current,
                        v.change,
                        v.ts,
                        int(v.dry_run),
                        int(v.final),
                    ),
                )
            ]
        return []

    def _stored_host(self, deploy_id: str, host: str) -> HostView:
        """The host as stored (when this History did not see the deploy start)."""
        rows = self._read("SELECT * FROM host_results WHERE deploy_id = ? AND host = ?", (deploy_id, host))
        if not rows:
            return HostView(host)
        r = _host(rows[0])
        return HostView(
            host,
            state=r.state,
            phase=r.phase,
            reason=r.reason,
            output=r.output,
            exit_code=r.exit_code,
            bytes=r.bytes,
            seconds=dict(r.seconds),
        )

    @staticmethod
    def _host_upsert(deploy_id: str, h: HostView, *, ok: bool = False) -> tuple[str, tuple[Any, ...]]:
        return (
            "INSERT INTO host_results (deploy_id, host, state, phase, reason, exit_code, output, seconds, "
            "bytes, ok) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (deploy_id, host) DO UPDATE SET "
            "state=excluded.state, phase=excluded.phase, reason=excluded.reason, exit_code=excluded.exit_code, "
            "output=excluded.output, seconds=excluded.seconds, bytes=excluded.bytes, "
            "ok=max(host_results.ok, excluded.ok)",
            (
                deploy_id,
                h.name,
                h.state,
                h.phase,
                h.reason,
                h.exit_code,
                h.output,
                json.dumps(h.seconds),
                h.bytes,
                int(ok),
            ),
        )

    # -- queries -----------------------------------------------------------------

    @staticmethod
    def _env(environment: str | None, prefix: str = "WHERE") -> tuple[str, tuple[Any, ...]]:
        return (f" {prefix} environment = ?", (environment,)) if environment else ("", ())

    def deploys(self, limit: int = 50, *, environment: str | None = None) -> list[DeployRecord]:
        """The newest deploys and switches first, with their verdicts (without host rows).

        Two queries however many deploys: the verdicts of all of them are read at once."""
        where, params = self._env(environment)
        rows = self._read(
            f"SELECT {_DEPLOY_COLUMNS} FROM deploys{where} ORDER BY started DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        records = [_deploy(r) for r in rows]
        if records:
            by_id = {r.id: r for r in records}
            marks = ", ".join("?" * len(by_id))
            for row in self._read(f"SELECT * FROM verdicts WHERE deploy_id IN ({marks}) ORDER BY ts, id", tuple(by_id)):
                by_id[row["deploy_id"]].verdicts.append(_verdict(row))
        return records

    def get(self, deploy_id: str) -> DeployRecord:
        """One deploy with its hosts and verdicts; ConsoleError if there is none."""
        rows = self._read(f"SELECT {_DEPLOY_COLUMNS} FROM deploys WHERE id = ?", (deploy_id,))
        if not rows:
            raise ConsoleError(f"{self.path}: no deploy {deploy_id!r} in the history")
        record = _deploy(rows[0])
        hosts = self._read("SELECT * FROM host_results WHERE deploy_id = ? ORDER BY host", (deploy_id,))
        record.hosts = [_host(r) for r in hosts]
        record.verdicts = self.verdicts(deploy_id)
        return record

    def last_deploy(self, *, environment: str | None = None, action: str | None = None) -> DeployRecord | None:
        """The newest deploy (or switch), finished or not, with its hosts."""
        clauses = [c for c in ("environment = ?" if environment else "", "action = ?" if action else "") if c]
        params = tuple(p for p in (environment, action) if p)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT id FROM deploys{where} ORDER BY started DESC, id DESC LIMIT 1", params)
        return self.get(rows[0]["id"]) if rows else None

    def live_revision(self, *, environment: str | None = None) -> str | None:
        """The revision of the newest deploy or switch that reached hosts (ok or partial)."""
        return self._live("revision", environment)

    def live_release(self, *, environment: str | None = None) -> str | None:
        """The release of the newest deploy or switch that reached hosts (ok or partial):
        what the hosts that took part serve (the base a deploy's change is measured from)."""
        return self._live("release", environment)

    def live_deploy(self, *, environment: str | None = None) -> DeployRecord | None:
        """The newest deploy or switch that reached hosts (ok or partial): the record of what
        the fleet serves (who put it there, when)."""
        row = self._live_row(_DEPLOY_COLUMNS, "revision", environment)
        return _deploy(row) if row else None

    def _live(self, column: str, environment: str | None) -> str | None:
        row = self._live_row(column, column, environment)
        return row[column] if row else None

    def _live_row(self, columns: str, needed: str, environment: str | None) -> sqlite3.Row | None:
        """`columns` of the newest deploy or switch that reached hosts and has `needed`."""
        where, params = self._env(environment, "AND")
        rows = self._read(
            f"SELECT {columns} FROM deploys WHERE result IN ('ok', 'partial') AND {needed} IS NOT NULL{where} "
            "ORDER BY started DESC, id DESC LIMIT 1",
            params,
        )
        return rows[0] if rows else None

    def failed_hosts_of_last(self, *, environment: str | None = None) -> list[str]:
        """Hosts that failed in the newest deploy that had failures, less those that
        succeeded in any later deploy or switch: what `invoke deploy --only failed` redoes."""
        where, params = self._env(environment, "AND")
        rows = self._read(
            "SELECT id, started FROM deploys WHERE action = 'deploy' AND EXISTS (SELECT 1 FROM host_results h "
            f"WHERE h.deploy_id = deploys.id AND h.state = 'failed'){where} ORDER BY started DESC, id DESC LIMIT 1",
            params,
        )
        if not rows:
            return []
        last, started = rows[0]["id"], rows[0]["started"]
        later = " AND d.environment = ?" if environment else ""
        failed = self._read(
            "SELECT host FROM host_results WHERE deploy_id = ? AND state = 'failed' AND host NOT IN ("
            "SELECT h.host FROM host_results h JOIN deploys d ON d.id = h.deploy_id "
            f"WHERE h.ok = 1 AND (d.started > ? OR (d.started = ? AND d.id > ?)){later}) ORDER BY host",
            (last, started, started, last, *params),
        )
        return [r["host"] for r in failed]

    def markers(self, since: float, *, environment: str | None = None) -> list[Marker]:
        """One marker per deploy and switch whose line falls at or after `since`, oldest first."""
        where, params = self._env(environment, "AND")
        rows = self._read(
            f"SELECT {_DEPLOY_COLUMNS} FROM deploys WHERE (started >= ? OR activated >= ? OR ended >= ?){where} "
            "ORDER BY started",
            (since, since, since, *params),
        )
        marks = [m for m in map(Marker.of, map(_deploy, rows)) if m is not None and m.ts >= since]
        return sorted(marks, key=lambda m: m.ts)

    def verdicts(self, deploy_id: str, *, final_only: bool = False) -> list[WatchVerdict]:
        extra = " AND final = 1" if final_only else ""
        rows = self._read(f"SELECT * FROM verdicts WHERE deploy_id = ?{extra} ORDER BY ts, id", (deploy_id,))
        return [_verdict(r) for r in rows]

    def add_audit(self, environment: str, who: str, action: str, detail: str = "", *, ts: float | None = None) -> None:
        """Append one lock action to the audit log (its text `clean`: a hand-edited lock
        file it quotes cannot put a line break or a control character into the audit)."""
        self._write(
            [
                (
                    "INSERT INTO lock_audit (ts, environment, who, action, detail) VALUES (?, ?, ?, ?, ?)",
                    (time.time() if ts is None else ts, environment, clean(who), action, clean(detail)),
                )
            ]
        )

    def audit(self, *, environment: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Lock actions, newest first."""
        where, params = self._env(environment)
        rows = self._read(
            f"SELECT ts, environment, who, action, detail FROM lock_audit{where} ORDER BY ts DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [AuditRecord(r["ts"], r["environment"], r["who"], r["action"], r["detail"]) for r in rows]

    def releases_deployed(self, *, environment: str | None = None) -> list[tuple[str, str]]:
        """(release, revision) of every release that reached hosts (ok or partial),
        newest use first, each release once: what `invoke switch` may go back to."""
        where, params = self._env(environment, "AND")
        rows = self._read(
            "SELECT release, revision, max(started) AS last FROM deploys "
            f"WHERE result IN ('ok', 'partial') AND release IS NOT NULL{where} "
            "GROUP BY release ORDER BY last DESC",
            params,
        )
        return [(r["release"], r["revision"]) for r in rows]

    def to_json(self, limit: int = 50, *, environment: str | None = None) -> list[dict[str, Any]]:
        """`invoke history --json`: the newest deploys with their hosts and verdicts."""
        return [self.get(d.id).to_dict() for d in self.deploys(limit, environment=environment)]


class _Closing:
    """A connection used as `with`: closes (not just commits) on exit."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def execute(self, *args: Any) -> sqlite3.Cursor:
        return self.db.execute(*args)
