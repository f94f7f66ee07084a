"""The queue: the reviewed (or not) changes between the live revision and the branch tip.

Trunk is a line: the queue is the first-parent history after `live` up to `tip`, oldest
first, and deploying a commit deploys everything up to it (`included`). The engine asks
`refusals` about that range and raises `refusal_message` unless the person deploying
gives `--override "reason"`.

Fixing forward never dead-ends. When the live revision is not on the line (a hotfix
deployed from a side branch, trunk force-pushed), the queue starts where the two part
(their merge base), and `queue_for` also names the live commits a deploy would take off
the fleet (`departing`); so does a deploy of a commit older than live. Either is refused
(`position_refusal`) unless overridden, never impossible.

Review: a commit is approved when its message ends with the review trailer (default
`Reviewed-by:`), as git itself parses trailers: only the final paragraph of trailers
counts, so the words "Reviewed-by: ..." in the middle of the prose do not.

A merge on the line is approved when the merge itself carries the trailer (someone
reviewed the result, conflict resolutions included) or, failing that, when every
non-merge commit it brings in carries it (the branch was reviewed commit by commit, the
usual case for a merged topic branch). Merges inside the branch (e.g. trunk merged into
the topic branch) are not asked for a trailer: they bring in nothing that is not
reviewed on its own. A merge that brings in no commit at all needs its own trailer. Its
reviewers are its own trailer values, else everyone who reviewed the commits it brings
in. A merge's files and DDL are its diff against its first parent: what the deploy
changes on the hosts.

Cost: one `git log -p` for the whole queue, plus one `git log` without patches when the
queue holds a merge. The queue is read on every console refresh.
"""

from __future__ import annotations

import re
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from console.config.keys import DEFAULT_DDL_PATHS, TOP
from console.core.errors import ConsoleError
from console.core.text import printable, short
from console.trunk.ddl import DIFF_OPTIONS, DdlHit, ddl_in_files, parse_patch
from console.trunk.git import is_ancestor, merge_base, resolve_commit, run_git

#: How many DDL hits a refusal reason names before "(+N more)".
REASON_HITS = 2
#: How many departing commits a refusal names before "(+N more)".
REASON_COMMITS = 5

_FIELD = "\x1f"
_VALUE = "\x1e"
_TRAILER_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")


@dataclass(frozen=True)
class Change:
    """One commit on the line between the live revision and the tip."""

    sha: str
    short: str
    author: str
    email: str
    time: int
    """Author time, seconds since the epoch."""
    subject: str
    files: tuple[str, ...]
    """Paths changed (against the first parent for a merge); a rename is its two paths."""
    approved: bool
    reviewers: tuple[str, ...]
    ddl: tuple[DdlHit, ...]
    merge: bool


@dataclass(frozen=True)
class Refusal:
    """Why the engine will not deploy `sha` without an override."""

    sha: str
    short: str
    subject: str
    reason: str
    """E.g. "not reviewed", "DDL: migrations/0002.sql:1 ALTER TABLE ...", or both joined by "; "."""


def _check_trailer(trailer: str) -> str:
    key = trailer.strip().rstrip(":")
    if not _TRAILER_KEY.match(key):
        raise ConsoleError(
            f"review trailer {trailer!r} is not a trailer key: expected letters, digits and dashes, like Reviewed-by"
        )
    return key


def _values(field: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in field.split(_VALUE):
        value = value.strip()
        if value:
            seen.setdefault(value, None)
    return tuple(seen)


def _range_args(repo: Path, live: str | None, tip: str) -> tuple[str, list[str]]:
    """Resolve `tip` and `live`; return (tip sha, rev args): what is on tip's line after
    `live`, or after their merge base when `live` is not an ancestor of `tip`."""
    tip_sha = resolve_commit(repo, tip)
    if live is None:
        return tip_sha, [tip_sha]
    live_sha = resolve_commit(repo, live)
    base = live_sha if is_ancestor(repo, live_sha, tip_sha) else merge_base(repo, live_sha, tip_sha)
    return tip_sha, [tip_sha, f"^{base}"] if base else [tip_sha]


def _brought_in(
    repo: Path, revs: list[str], line: list[tuple[str, list[str]]], key: str
) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """For each merge on `line`: the (sha, reviewers) of the non-merge commits it brings in.

    One `git log` over every commit in the range; a commit is brought in by the first
    merge on the line that reaches it.
    """
    fmt = f"%H{_FIELD}%P{_FIELD}%(trailers:key={key},valueonly,separator=%x1e)"
    out = run_git(repo, "log", "--no-show-signature", "--encoding=UTF-8", "-z", f"--format={fmt}", *revs, "--")
    parents: dict[str, list[str]] = {}
    reviewers: dict[str, tuple[str, ...]] = {}
    order: dict[str, int] = {}
    for record in out.split("\0"):
        if not record.strip():
            continue
        sha, par, trailers = ([*record.strip("\n").split(_FIELD), "", ""])[:3]
        parents[sha] = par.split()
        order[sha] = len(order)  # git log prints newest first
        reviewers[sha] = _values(trailers)

    seen: set[str] = set()
    result: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for sha, pars in line:
        seen.add(sha)
        stack = [p for p in pars if p in parents and p not in seen]
        new: list[str] = []
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            new.append(c)
            stack.extend(p for p in parents[c] if p in parents and p not in seen)
        if len(pars) > 1:
            new.sort(key=order.__getitem__, reverse=True)  # oldest first
            result[sha] = [(c, reviewers[c]) for c in new if len(parents[c]) <= 1]
    return result


def pending_changes(
    repo: Path,
    live: str | None,
    tip: str,
    *,
    trailer: str = TOP.default("review_trailer"),
    ddl_paths: Sequence[str] = DEFAULT_DDL_PATHS,
) -> list[Change]:
    """The commits after `live` up to `tip` on the first-parent line, oldest first.

    `live` None means the whole history; a `live` that is not an ancestor of `tip` (a
    hotfix from a side branch, history rewritten) means from their merge base. Raises
    ConsoleError for an unknown ref and for a trailer key git cannot look up.
    """
    repo = Path(repo)
    key = _check_trailer(trailer)
    _, revs = _range_args(repo, live, tip)
    fmt = (
        f"%x00%H{_FIELD}%P{_FIELD}%an{_FIELD}%ae{_FIELD}%at{_FIELD}%s{_FIELD}"
        f"%(trailers:key={key},valueonly,separator=%x1e)%x00"
    )
    out = run_git(
        repo,
        "-c",
        "core.quotePath=false",
        "log",
        "--first-parent",
        "--reverse",
        "--no-show-signature",
        "--encoding=UTF-8",
        "-p",
        *DIFF_OPTIONS,
        f"--format={fmt}",
        *revs,
        "--",
    )
    # "\0header\0patch\0header\0patch...": headers at odd indexes, each followed by its patch.
    parts = out.split("\0")
    rows: list[tuple[list[str], str]] = []
    for i in range(1, len(parts) - 1, 2):
        fields = parts[i].split(_FIELD)
        if len(fields) != 7:
            raise ConsoleError(f"git log in {repo} printed a commit header the console cannot read: {parts[i][:60]!r}")
        rows.append((fields, parts[i + 1]))

    merges: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    if any(len(fields[1].split()) > 1 for fields, _ in rows):
        line = [(fields[0], fields[1].split()) for fields, _ in rows]
        merges = _brought_in(repo, revs, line, key)

    changes = []
    for (sha, par, author, email, at, subject, trailers), patch in rows:
        reviewers = _values(trailers)
        is_merge = len(par.split()) > 1
        approved = bool(reviewers)
        if is_merge and not reviewers:
            branch = merges.get(sha, [])
            if branch and all(r for _, r in branch):
                approved = True
                reviewers = _values(_VALUE.join(v for _, r in branch for v in r))
        files = parse_patch(patch)
        changes.append(
            Change(
                sha=sha,
                short=short(sha),
                author=author,
                email=email,
                time=int(at) if at.isdigit() else 0,
                subject=subject,
                files=tuple(dict.fromkeys(f.path for f in files)),
                approved=approved,
                reviewers=reviewers,
                ddl=tuple(ddl_in_files(files, ddl_paths)),
                merge=is_merge,
            )
        )
    return changes


@dataclass(frozen=True)
class Queue:
    """What a deploy of `target` changes on the fleet: the commits it brings (`changes`,
    oldest first) and the live commits it takes off (`departing`)."""

    live: str | None
    target: str
    changes: list[Change]
    departing: list[Change]
    #: False when the live revision is not in the repository at all (nothing is known of it)
    live_known: bool = True

    @property
    def older(self) -> bool:
        """The target is an ancestor of live: what departs is live's newer commits only."""
        return self.live_known and bool(self.departing) and not self.changes


def queue_for(
    repo: Path,
    live: str | None,
    target: str,
    *,
    trailer: str = TOP.default("review_trailer"),
    ddl_paths: Sequence[str] = DEFAULT_DDL_PATHS,
) -> Queue:
    """The queue from `live` to `target` (full commit ids; see `Queue`)."""
    if live is not None and resolve_known(repo, live) is None:
        changes = pending_changes(repo, None, target, trailer=trailer, ddl_paths=ddl_paths)
        return Queue(live, target, changes, [], live_known=False)
    changes = pending_changes(repo, live, target, trailer=trailer, ddl_paths=ddl_paths)
    departing = (
        pending_changes(repo, target, live, trailer=trailer, ddl_paths=ddl_paths) if live and live != target else []
    )
    return Queue(live, target, changes, departing)


def resolve_known(repo: Path, ref: str) -> str | None:
    """The commit `ref` names, or None when the repository does not have it."""
    try:
        return resolve_commit(repo, ref)
    except ConsoleError:
        return None


def position_refusal(queue: Queue, *, on_branch: bool, branch: str) -> str:
    """Why deploying `queue.target` needs an override whatever its commits say: it is not
    on the branch, it is older than live, or live is not in its history (then the live
    commits it takes off the fleet, by name). "" if none."""
    target, live = short(queue.target), short(queue.live)
    reasons, details = [], []
    if not on_branch:
        reasons.append(f"it is not on branch {branch}")
    if not queue.live_known:
        reasons.append(f"the live revision {live} is not in trunk's repository, and it would replace it")
    elif queue.departing:
        n = len(queue.departing)
        if queue.older:
            reasons.append(
                f"it is older than live {live} and takes {n} newer commit(s) off the fleet; to go back use invoke switch"
            )
        else:
            reasons.append(f"live {live} is not in its history: it takes {n} live commit(s) off the fleet")
        details = [f"  off the fleet: {c.short} {printable(c.subject, 72)}" for c in queue.departing[:REASON_COMMITS]]
        if n > REASON_COMMITS:
            details.append(f"  (+{n - REASON_COMMITS} more)")
    if not reasons:
        return ""
    head = f'refusing to deploy {target}: {"; ".join(reasons)}; pass --override "reason" to deploy it anyway'
    return "\n".join([head, *details])


def included(changes: Sequence[Change], target_sha: str) -> list[Change]:
    """The changes a deploy of `target_sha` ships: every queued change up to and including it.

    `target_sha` is a full commit id or an unambiguous prefix of at least 4 hex digits of
    one in the queue; anything else is a ConsoleError.
    """
    target = target_sha.strip().lower()
    if len(target) < 4 or not re.fullmatch(r"[0-9a-f]+", target):
        raise ConsoleError(f"deploy target {target_sha!r} is not a commit id: expected at least 4 hex digits")
    hits = [i for i, c in enumerate(changes) if c.sha.startswith(target)]
    if not hits:
        raise ConsoleError(
            f"commit {target_sha} is not in the queue of undeployed changes: expected one of the {len(changes)} queued"
        )
    if len(hits) > 1:
        raise ConsoleError(f"commit id {target_sha} matches {len(hits)} queued commits: expected a longer id")
    return list(changes[: hits[0] + 1])


def _ddl_reason(hits: Sequence[DdlHit]) -> str:
    shown = "; ".join(h.describe() for h in hits[:REASON_HITS])
    if len(hits) > REASON_HITS:
        shown += f" (+{len(hits) - REASON_HITS} more)"
    return "DDL: " + shown


def refusals(included_changes: Sequence[Change]) -> list[Refusal]:
    """One Refusal per change that is not reviewed or carries DDL, in queue order."""
    out = []
    for c in included_changes:
        reasons = []
        if not c.approved:
            reasons.append("not reviewed")
        if c.ddl:
            reasons.append(_ddl_reason(c.ddl))
        if reasons:
            out.append(Refusal(c.sha, c.short, c.subject, "; ".join(reasons)))
    return out


def refusal_message(refusals: Sequence[Refusal]) -> str:
    """A header line, then one line per refused commit: `short subject: reason`. "" if none."""
    if not refusals:
        return ""
    n = len(refusals)
    head = (
        f"refusing to deploy: {n} commit{'s' if n != 1 else ''} "
        f"{'are' if n != 1 else 'is'} not reviewed or change the schema; "
        'deploy them through their own process, or pass --override "reason"'
    )
    lines = [head]
    for r in refusals:
        lines.append(f"  {r.short} {printable(r.subject, 72)}: {r.reason}")
    return "\n".join(lines)


def to_json(change: Change, *, now: float | None = None) -> dict[str, object]:
    """A plain dict for `invoke queue --json`: ISO 8601 UTC time plus the age in seconds."""
    now = _time.time() if now is None else now
    return {
        "sha": change.sha,
        "short": change.short,
        "author": change.author,
        "email": change.email,
        "time": change.time,
        "time_iso": datetime.fromtimestamp(change.time, UTC).isoformat().replace("+00:00", "Z"),
        "age_s": max(0, int(now - change.time)),
        "subject": change.subject,
        "files": list(change.files),
        "approved": change.approved,
        "reviewers": list(change.reviewers),
        "ddl": [h.to_json() for h in change.ddl],
        "merge": change.merge,
    }
