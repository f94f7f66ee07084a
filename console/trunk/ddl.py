"""DDL is not code: find the schema changes in a commit.

A commit is DDL when it touches a file matching one of the inventory's `ddl.paths` globs
or when it *adds* a line holding a DDL statement, in any file (SQL embedded in a Python
string counts). Each finding is a `DdlHit` naming the file and, for statements, the line
number in the new version of the file, so a refusal can say
"DDL: migrations/0002.sql:1 ALTER TABLE users ADD COLUMN ...".

Path globs (`path_matches`) are matched against the whole path from the repository root,
like gitignore patterns that contain a slash: `*` and `?` stay within one directory,
`**/` spans zero or more directories, a trailing `/**` matches everything below a
directory. `migrations/**` therefore matches `migrations/0002.py` but not
`shop/migrations/0002.py` (write `**/migrations/**` for that).

Statements (`ddl_statement`): CREATE / ALTER / DROP / RENAME of a TABLE or an INDEX.
- Keywords in capitals followed by a name are DDL wherever they appear, comments and
  strings included: `CREATE UNIQUE INDEX ix ON t (c)`, `DROP TABLE IF EXISTS t`,
  `ALTER TABLE t RENAME TO u`, `RENAME TABLE a TO b`, `# TODO: CREATE INDEX later`.
  A false alarm costs an `--override` with a reason; a missed migration costs an outage.
- Keywords in lower or mixed case are prose unless the rest of the line has the shape of
  SQL: `create table t (`, `create index i on t`, `alter table t add|drop|alter|rename|
  modify|change|set ...`, `drop table t;` / `t cascade` / `if exists t`, `rename table a to
  b`, or a quoted or schema-qualified name (`"users"`, `public.users`). So "we alter the
  table layout", "drop table tennis" and "# TODO: create index later" are not DDL.
- Keywords are whole words: `created_table`, `CREATE_TABLE_SQL` are not statements.
- Only added lines count; removed lines and context never do.
- One line at a time: a lower-case statement split over several lines is not seen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from console.config.keys import DEFAULT_DDL_PATHS
from console.trunk.git import resolve_commit, run_git

#: Added lines longer than this are cut in `DdlHit.text`.
MAX_TEXT = 160

#: git options that make a patch parseable whatever the user's config says.
DIFF_OPTIONS: tuple[str, ...] = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "--no-relative",
    "-U0",
    "--inter-hunk-context=0",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--diff-merges=first-parent",
)


@dataclass(frozen=True)
class DdlHit:
    """One reason a commit is DDL.

    `why == "statement"`: `line` (1-based, in the new file) adds the DDL statement `text`.
    `why == "path"`: the commit touches `file`, which matches a `ddl.paths` glob; `line` is
    None and `text` names the glob. A file whose added lines hold statements gets only
    its statement hits.
    """

    file: str
    line: int | None
    text: str
    why: Literal["path", "statement"]

    def describe(self) -> str:
        """`file:line text` for statements, `file (text)` for paths."""
        if self.line is None:
            return f"{self.file} ({self.text})"
        return f"{self.file}:{self.line} {self.text}"

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "text": self.text, "why": self.why}


# --- path globs -----------------------------------------------------------------------


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a `ddl.paths` glob to a regex matching whole repository paths."""
    pat = pattern.strip().lstrip("/")
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**", i):
            j = i
            while j < n and pat[j] == "*":
                j += 1
            at_start = i == 0 or pat[i - 1] == "/"
            if at_start and j < n and pat[j] == "/":  # "**/": zero or more directories
                out.append("(?:[^/]*/)*")
                i = j + 1
            elif at_start and j == n:  # trailing "/**" (or a lone "**"): everything below
                out.append(".+" if i else ".*")
                i = j
            else:  # "a**b": an ordinary star
                out.append("[^/]*")
                i = j
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pat[j] in "!^":
                j += 1
            if j < n and pat[j] == "]":
                j += 1
            while j < n and pat[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal "["
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1 : j]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = "".join(ch if ch == "-" else re.escape(ch) for ch in body)
                out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def path_matches(path: str, patterns: Iterable[str] = DEFAULT_DDL_PATHS) -> str | None:
    """The first glob in `patterns` matching `path` (from the repository root), or None."""
    for pattern in patterns:
        if pattern.strip() and glob_regex(pattern).match(path):
            return pattern
    return None


# --- statements -----------------------------------------------------------------------

_PART = r"""(?:`[^`]+`|"[^"]+"|\[[^\]]+\]|[A-Za-z_][\w$]*)"""
_NAME = rf"{_PART}(?:\.{_PART})*"
#: A name prose would not have: quoted, or qualified by a schema (`public.users`).
_STRONG_NAME = rf"""(?:`[^`]+`|"[^"]+"|\[[^\]]+\]|[A-Za-z_][\w$]*\.{_PART})"""
_CREATE_MODS = r"(?:\s+(?:OR\s+REPLACE|UNIQUE|TEMPORARY|TEMP|GLOBAL|LOCAL|UNLOGGED|FULLTEXT|SPATIAL|CLUSTERED|NONCLUSTERED|BITMAP))*"

# Capitals: the keywords then any name. Case-sensitive on purpose.
_CAPS = re.compile(
    r"(?<![\w$])(?:"
    rf"CREATE{_CREATE_MODS}\s+(?:TABLE|INDEX)"
    r"|ALTER\s+(?:TABLE|INDEX)"
    r"|DROP\s+(?:TABLE|INDEX)"
    r"|RENAME\s+TABLE"
    rf")(?![\w$])\s+{_NAME}"
)

_I = re.IGNORECASE
_EXISTS = r"(?:\s+if\s+(?:not\s+)?exists)?"
# Any case: only with the shape of SQL around the keywords.
_SHAPED = [
    re.compile(rf"(?<![\w$])create{_CREATE_MODS}\s+table{_EXISTS}\s+{_NAME}\s*(?:\(|as\s+select\b|like\b)", _I),
    re.compile(
        rf"(?<![\w$])create{_CREATE_MODS}\s+index(?:\s+concurrently)?{_EXISTS}(?:\s+{_NAME})?\s+on\s+{_NAME}", _I
    ),
    re.compile(
        rf"(?<![\w$])alter\s+table{_EXISTS}(?:\s+only)?\s+{_NAME}\s+"
        r"(?:add|drop|alter|rename|modify|change|set|owner|attach|detach|enable|disable|engine|convert)\b",
        _I,
    ),
    re.compile(rf"(?<![\w$])alter\s+index{_EXISTS}\s+{_NAME}\s+(?:rename|set|reset|attach|owner)\b", _I),
    re.compile(rf"(?<![\w$])drop\s+(?:table|index)(?:\s+concurrently)?\s+if\s+exists\s+{_NAME}", _I),
    re.compile(
        rf"(?<![\w$])drop\s+(?:table|index)(?:\s+concurrently)?\s+{_NAME}\s*(?:;|,|\bcascade\b|\brestrict\b)", _I
    ),
    re.compile(rf"(?<![\w$])rename\s+table\s+{_NAME}\s+to\s+{_NAME}", _I),
    re.compile(
        rf"(?<![\w$])(?:(?:create{_CREATE_MODS}|alter|drop)\s+(?:table|index)|rename\s+table)"
        rf"{_EXISTS}(?:\s+only)?\s+{_STRONG_NAME}",
        _I,
    ),
]


_PATTERNS = (_CAPS, *_SHAPED)
#: The first keyword of every statement above, and a pattern for where each one is.
_VERBS = ("create", "alter", "drop", "rename")
_VERB = re.compile("|".join(_VERBS), _I)


def ddl_statement(line: str) -> str | None:
    """The DDL statement on `line`, from its first keyword (cut to MAX_TEXT), or None.

    The patterns are tried only where a statement can begin, at a CREATE, ALTER, DROP or
    RENAME, and only on a line that names a TABLE or an INDEX: searched along the whole
    line, each of the nine took 9 ms on a 500 KB line of a minified bundle or generated
    data, 83 ms per file and per commit on every deploy and every look at the queue."""
    low = line.lower()
    if len(low) == len(line) and "\u0131" not in low:
        # each character of `line` has its lower case in its place in `low`: found there at C
        # speed. (Otherwise: `İ` lowers to two characters, and `ı` matches i in the patterns;
        # these are the only non-ASCII characters that match a letter of the keywords.)
        if "table" not in low and "index" not in low:
            return None
        starts = sorted(at for verb in _VERBS for at in _found(low, verb))
    else:
        starts = [m.start() for m in _VERB.finditer(line)]
    for at in starts:
        if any(pattern.match(line, at) for pattern in _PATTERNS):
            text = line[at:].strip()
            return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
    return None


def _found(text: str, word: str) -> Iterator[int]:
    """Every place of `word` in `text`."""
    at = text.find(word)
    while at >= 0:
        yield at
        at = text.find(word, at + 1)


# --- patches --------------------------------------------------------------------------

_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquote(text: str) -> tuple[str, str]:
    """Split a C-quoted git path (`"a/x\\ty"`) from the start of `text`: (path, rest)."""
    assert text.startswith('"')
    out = bytearray()
    i = 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return out.decode("utf-8", "replace"), text[i + 1 :]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "0123" and re.match(r"[0-7]{3}", text[i + 1 : i + 4]):
                out.append(int(text[i + 1 : i + 4], 8))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt)))
            i += 2
            continue
        out.extend(c.encode("utf-8"))
        i += 1
    return out.decode("utf-8", "replace"), ""


def _strip_prefix(path: str) -> str:
    return path[2:] if path[:2] in ("a/", "b/") else path


def _header_path(rest: str) -> str:
    """The path of `diff --git <rest>`, where both sides name the same file (no renames)."""
    if rest.startswith('"'):
        first, _ = _unquote(rest)
        return _strip_prefix(first)
    n = (len(rest) - 5) // 2
    if n > 0 and rest[:2] == "a/" and rest[2 + n : 2 + n + 3] == " b/":
        return rest[2 : 2 + n]
    return _strip_prefix(rest.split(" ", 1)[0])


def _side_path(rest: str) -> str | None:
    """The path of a `--- a/x` / `+++ b/x` line, None for /dev/null."""
    if rest.startswith('"'):
        path, _ = _unquote(rest)
    else:
        path = rest[:-1] if rest.endswith("\t") else rest
    if path == "/dev/null":
        return None
    return _strip_prefix(path)


@dataclass
class FileChange:
    """One file of a patch: its path and its added lines as (line number, text)."""

    path: str
    added: list[tuple[int, str]]


def parse_patch(patch: str) -> list[FileChange]:
    """The files of a `git diff -U0 --no-renames` patch with their added lines, in order.

    Hunk line counts are followed, so an added or removed line that itself starts with
    `++` or `--` (an SQL comment) is never mistaken for a file header.
    """
    files: list[FileChange] = []
    current: FileChange | None = None
    old_left = new_left = 0
    new_no = 0
    for raw in patch.split("\n"):
        if old_left > 0 or new_left > 0:
            tag, body = raw[:1], raw[1:]
            if tag == "+":
                if current is not None:
                    current.added.append((new_no, body))
                new_no += 1
                new_left -= 1
            elif tag == "-":
                old_left -= 1
            elif tag == " ":
                new_no += 1
                new_left -= 1
                old_left -= 1
            elif tag == "\\":  # "\ No newline at end of file"
                pass
            else:  # malformed: leave the hunk
                old_left = new_left = 0
            continue
        if raw.startswith("diff --git "):
            current = FileChange(_header_path(raw[len("diff --git ") :].rstrip("\r")), [])
            files.append(current)
        elif current is None:
            continue
        elif raw.startswith("--- ") or raw.startswith("+++ "):
            path = _side_path(raw[4:])
            if path is not None:
                current.path = path
        elif raw.startswith("@@ "):
            m = _HUNK.match(raw)
            if m:
                old_left = int(m.group(1)) if m.group(1) is not None else 1
                new_left = int(m.group(3)) if m.group(3) is not None else 1
                new_no = int(m.group(2))
        elif raw.startswith("\\"):
            pass
    return files


def ddl_in_files(files: Sequence[FileChange], paths: Sequence[str] = DEFAULT_DDL_PATHS) -> list[DdlHit]:
    """The DDL hits of parsed patch files: statement hits per added line, else a path hit."""
    hits: list[DdlHit] = []
    for change in files:
        statements = [
            DdlHit(change.path, line_no, text, "statement")
            for line_no, body in change.added
            if (text := ddl_statement(body)) is not None
        ]
        if statements:
            hits.extend(statements)
        elif (pattern := path_matches(change.path, paths)) is not None:
            hits.append(DdlHit(change.path, None, f"matches ddl path {pattern}", "path"))
    return hits


def find_ddl(repo: Path, commit: str, paths: Sequence[str] = DEFAULT_DDL_PATHS) -> list[DdlHit]:
    """The DDL hits of `commit` in `repo` (a merge: its diff against its first parent)."""
    sha = resolve_commit(repo, commit)
    patch = run_git(repo, "-c", "core.quotePath=false", "show", "--format=", *DIFF_OPTIONS, sha)
    return ddl_in_files(parse_patch(patch), paths)
