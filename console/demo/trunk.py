"""The demo's trunk: a real git repository of the shop with a history worth deploying.

`create_trunk(path)` builds a bare repository at `path` (branch `main`) by committing the
shop source from `shop/` and then a series of changes, from a temporary work tree, and
pushing. Names and emails are fixed and git never reads the machine's or the user's
configuration; dates are fixed too unless a start is given (the demo fleet starts its
trunk an hour ago, so the console shows real ages), so tests always get the same ids.

History, oldest first (the roles of `Trunk.commits`):

    initial     the first shop (the demo deploys this first)
    copy        page text
    style       CSS: its hashed asset name changes
    script      JS: its hashed asset name changes
    breaking    shipping by freight class: ~30% of checkouts fail with HTTP 500
    fix         parcel rate for products without a freight class: checkouts work again
    unreviewed  page text, committed without review
    ddl         migrations/0002_add_gift_wrap.sql (ALTER TABLE)

Every commit but `unreviewed` ends with a `Reviewed-by: Name <email>` trailer.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.core.errors import ConsoleError
from console.demo.layout import shop_source

BRANCH = "main"
REVIEW_TRAILER = "Reviewed-by"
ROLES: tuple[str, ...] = ("initial", "copy", "style", "script", "breaking", "fix", "unreviewed", "ddl")
START = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=7)

#: Who writes and who reviews: (name, email).
PEOPLE: dict[str, tuple[str, str]] = {
    "alice": ("Alice Archer", "alice@workshop.example"),
    "bob": ("Bob Brandt", "bob@workshop.example"),
    "carol": ("Carmen Cruz", "carol@workshop.example"),
    "dave": ("Dev Patel", "dave@workshop.example"),
}


@dataclass(frozen=True)
class Trunk:
    """A demo trunk: the bare repository, its branch and its commit ids by role, oldest first."""

    path: Path
    branch: str
    commits: dict[str, str] = field(hash=False)

    def role(self, name: str) -> str:
        try:
            return self.commits[name]
        except KeyError:
            raise ConsoleError(
                f"demo trunk: no commit with role {name!r}; expected one of {', '.join(self.commits)}"
            ) from None

    @property
    def initial(self) -> str:
        return self.commits["initial"]

    @property
    def breaking(self) -> str:
        return self.commits["breaking"]

    @property
    def fix(self) -> str:
        return self.commits["fix"]

    @property
    def unreviewed(self) -> str:
        return self.commits["unreviewed"]

    @property
    def ddl(self) -> str:
        return self.commits["ddl"]

    @property
    def head(self) -> str:
        return list(self.commits.values())[-1]


def _env(when: datetime, author: str) -> dict[str, str]:
    name, email = PEOPLE[author]
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_COMMITTER_DATE": stamp,
        "TZ": "UTC",
    }


def _git(cwd: Path, *args: str, when: datetime = START, author: str = "alice") -> str:
    name, email = PEOPLE[author]
    cmd = [
        "git",
        "-c",
        f"user.name={name}",
        "-c",
        f"user.email={email}",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "core.autocrlf=false",
        "-c",
        "init.defaultBranch=main",
        *args,
    ]
    try:
        done = subprocess.run(cmd, cwd=cwd, env=_env(when, author), capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise ConsoleError("git: not found; expected git on PATH to build the demo trunk") from None
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise ConsoleError(
            f"git {args[0]} in {cwd}: {lines[-1] if lines else f'exit status {exc.returncode}'}"
        ) from None
    return done.stdout.strip()


def _message(subject: str, body: str, reviewer: str | None) -> str:
    text = subject.strip() + "\n"
    if body:
        text += "\n" + body.strip() + "\n"
    if reviewer:
        name, email = PEOPLE[reviewer]
        text += f"\n{REVIEW_TRAILER}: {name} <{email}>\n"
    return text


def _commit(work: Path, subject: str, body: str, author: str, reviewer: str | None, when: datetime) -> str:
    _git(work, "add", "-A", when=when, author=author)
    msg = work.parent / "message.txt"
    msg.write_text(_message(subject, body, reviewer), encoding="utf-8")
    _git(work, "commit", "-q", "--no-verify", "--cleanup=strip", "-F", str(msg), when=when, author=author)
    return _git(work, "rev-parse", "HEAD", when=when, author=author)


def _copy_tree(source: Path, dest: Path) -> None:
    """Copy file contents only (no modes, no caches): the same source gives the same tree."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if "__pycache__" in rel.parts or path.suffix == ".pyc" or not path.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())


def _edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(work: Path) -> None:
        path = work / rel
        text = path.read_text(encoding="utf-8")
        if text.count(old) != 1:
            raise ConsoleError(f"demo trunk: {rel} no longer contains the text this change edits: {old[:40]!r}")
        path.write_text(text.replace(old, new), encoding="utf-8")

    return apply


def _add(rel: str, text: str) -> Callable[[Path], None]:
    def apply(work: Path) -> None:
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    return apply


_BREAKING = '''#: Freight class per product: carriers now price by class, not by weight.
FREIGHT_CLASS = {1: "A", 2: "A", 4: "A", 5: "C", 7: "A", 8: "A", 10: "B"}
RATE_CENTS = {"A": 450, "B": 650, "C": 1200}


def shipping_cents(product_id, qty):
    """Freight rate: the class price, plus half of it for every further item."""
    rate = RATE_CENTS[FREIGHT_CLASS[product_id]]
    return rate + (qty - 1) * rate // 2
'''
_PARCEL = '''def shipping_cents(product_id, qty):
    """Parcel rate: a base price plus a step for every started 500 g."""
    grams = WEIGHT_G[product_id] * qty
    return 450 + (grams // 500) * 150
'''

#: role -> (author, reviewer or None, subject, body, edits)
CHANGES: tuple[tuple[str, str, str | None, str, str, tuple[Callable[[Path], None], ...]], ...] = (
    (
        "copy",
        "bob",
        "carol",
        "Say on every page when orders ship",
        "Shoppers kept asking in reviews; the answer belongs in the header.",
        (
            _edit(
                "shop/pages.py",
                "Handmade goods from our workshop, shipped the same week.",
                "Handmade goods from our workshop. Orders placed by Thursday ship on Friday.",
            ),
        ),
    ),
    (
        "style",
        "carol",
        "alice",
        "Give prices more room on small screens",
        "",
        (
            _edit(
                "assets/css/shop.css",
                ".price { font-weight: bold; color: #7a3e1d; }",
                ".price { font-weight: bold; color: #7a3e1d; white-space: nowrap; padding-left: 1rem; }",
            ),
        ),
    ),
    (
        "script",
        "dave",
        "bob",
        "Ask before buying more than one",
        "A single item goes straight to checkout; only larger orders ask first.",
        (
            _edit(
                "assets/js/shop.js",
                'if (!window.confirm("Buy " + qty + "?")) event.preventDefault();',
                'if (qty > 1 && !window.confirm("Buy " + qty + "?")) event.preventDefault();',
            ),
        ),
    ),
    (
        "breaking",
        "alice",
        "dave",
        "Price shipping by freight class",
        "Our carrier moved to freight classes; weight-based parcel rates are gone.",
        (_edit("shop/checkout.py", _PARCEL, _BREAKING),),
    ),
    (
        "fix",
        "alice",
        "bob",
        "Fall back to class B freight for unclassified products",
        "Products 3, 6 and 9 have no freight class yet, and their checkouts failed with a KeyError.",
        (
            _edit(
                "shop/checkout.py",
                "rate = RATE_CENTS[FREIGHT_CLASS[product_id]]",
                'rate = RATE_CENTS[FREIGHT_CLASS.get(product_id, "B")]',
            ),
        ),
    ),
    (
        "unreviewed",
        "dave",
        None,
        "Show how many products the shop has",
        "",
        (_edit("shop/pages.py", "<h1>Shop</h1>", "<h1>Shop <small>({len(PRODUCTS)} things)</small></h1>"),),
    ),
    (
        "ddl",
        "carol",
        "alice",
        "Add gift wrap to orders",
        "The column comes first; the checkout option follows once it exists everywhere.",
        (
            _add(
                "migrations/0002_add_gift_wrap.sql",
                "-- Gift wrap is a per-order option.\n"
                "ALTER TABLE orders ADD COLUMN gift_wrap BOOLEAN NOT NULL DEFAULT FALSE;\n",
            ),
        ),
    ),
)


def create_trunk(path: Path, start: datetime = START) -> Trunk:
    """Build the demo trunk as a bare repository at `path` (which must not exist or be an
    empty directory), its first commit dated `start` and each next one 7 minutes later;
    returns its commit ids by role, oldest first."""
    path = Path(path).absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConsoleError(f"{path}: already exists; expected a new or empty directory for the demo trunk")
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "--bare", "-b", BRANCH)
    commits: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="demo-trunk-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        _git(work, "init", "-q", "-b", BRANCH)
        _copy_tree(shop_source(), work)
        when = start
        commits["initial"] = _commit(
            work,
            "Open the workshop shop",
            "Pages, assets through the build manifest, checkout, /health and /metrics.",
            "alice",
            "bob",
            when,
        )
        for role, author, reviewer, subject, body, edits in CHANGES:
            for edit in edits:
                edit(work)
            when += STEP
            commits[role] = _commit(work, subject, body, author, reviewer, when)
        _git(work, "push", "-q", str(path), f"{BRANCH}:{BRANCH}")
    return Trunk(path=path, branch=BRANCH, commits=commits)


def commit_change(
    trunk: Trunk,
    files: Mapping[str, str | None],
    message: str,
    reviewed: bool = True,
    author: str = "bob",
) -> str:
    """Commit `files` (path -> new text; None deletes the file) on top of the trunk's branch
    and push it; the commit is dated a few minutes after the branch head. Returns its id.
    `message` is the subject (and body); `reviewed` adds the review trailer."""
    if author not in PEOPLE:
        raise ConsoleError(f"author {author!r}: expected one of {', '.join(PEOPLE)}")
    if not files:
        raise ConsoleError("commit_change: expected at least one file to change")
    with tempfile.TemporaryDirectory(prefix="demo-change-") as tmp:
        work = Path(tmp) / "work"
        _git(Path(tmp), "clone", "-q", "-b", trunk.branch, str(trunk.path), str(work))
        last = int(_git(work, "log", "-1", "--format=%ct"))
        when = datetime.fromtimestamp(last, UTC) + STEP
        for rel, text in files.items():
            target = work / rel
            if text is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        subject, _, body = message.strip().partition("\n")
        reviewer = next(p for p in PEOPLE if p != author) if reviewed else None
        commit = _commit(work, subject, body, author, reviewer, when)
        _git(work, "push", "-q", "origin", f"HEAD:{trunk.branch}", when=when, author=author)
    return commit
