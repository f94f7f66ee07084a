"""DDL detection: path globs, statement rules and their near-misses, on real commits."""

from __future__ import annotations

import pytest

from console.core.errors import ConsoleError
from console.trunk import ddl
from console.trunk.ddl import DdlHit, ddl_statement, find_ddl, parse_patch, path_matches
from support.gitrepo import Repo

# --- globs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, pattern",
    [
        ("init.sql", "**/*.sql"),
        ("db/seed/2024/users.sql", "**/*.sql"),
        ("migrations/0002_add_nick.py", "migrations/**"),
        ("migrations/versions/a/b.py", "migrations/**"),
        ("schema/shop.yaml", "schema/**"),
    ],
)
def test_ddl_paths_match(path: str, pattern: str) -> None:
    assert path_matches(path) == pattern


@pytest.mark.parametrize(
    "path",
    ["init.sqlite", "sql/README", "shop/migrations/0002.py", "migrations", "migrationsx/a.py", "schemas/a", "x.SQL"],
)
def test_ddl_paths_do_not_match(path: str) -> None:
    assert path_matches(path) is None


def test_glob_stars_classes_and_anchoring() -> None:
    assert path_matches("shop/migrations/0002.py", ["**/migrations/**"]) == "**/migrations/**"
    assert path_matches("a/x/y/b1.c", ["a/**/b[!x]?.c"]) is None  # "1." is two characters, not one
    assert path_matches("a/x/y/b1.c", ["a/**/b[!x].c"]) == "a/**/b[!x].c"
    assert path_matches("a/bx.c", ["a/**/b[!x].c"]) is None
    assert path_matches("a/b.c", ["a/*.c"]) == "a/*.c"
    assert path_matches("a/d/b.c", ["a/*.c"]) is None  # one star stays in its directory
    assert path_matches("db/schema.sql", ["/db/*.sql"]) == "/db/*.sql"  # a leading slash is the root


# --- statements -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, statement",
    [
        ("ALTER TABLE users ADD COLUMN nick text;", "ALTER TABLE users ADD COLUMN nick text;"),
        ("CREATE UNIQUE INDEX ix_email ON users (email);", "CREATE UNIQUE INDEX ix_email ON users (email);"),
        ("DROP TABLE IF EXISTS old_carts;", "DROP TABLE IF EXISTS old_carts;"),
        ("ALTER TABLE carts RENAME TO baskets;", "ALTER TABLE carts RENAME TO baskets;"),
        ("ALTER TABLE carts RENAME COLUMN n TO m", "ALTER TABLE carts RENAME COLUMN n TO m"),
        ("RENAME TABLE carts TO baskets;", "RENAME TABLE carts TO baskets;"),
        ("CREATE TABLE IF NOT EXISTS orders (id int)", "CREATE TABLE IF NOT EXISTS orders (id int)"),
        ("DROP INDEX ix_email", "DROP INDEX ix_email"),
        ('    db.execute("CREATE TABLE orders (id int)")', 'CREATE TABLE orders (id int)")'),
        ('db.execute("alter table users add column y int")', 'alter table users add column y int")'),
        ("create index on users (email)", "create index on users (email)"),
        ("create table orders(id int)", "create table orders(id int)"),
        ("drop table users;", "drop table users;"),
        ("drop table if exists users", "drop table if exists users"),
        ('drop table "users"', 'drop table "users"'),
        ("drop table public.users cascade", "drop table public.users cascade"),
        ("rename table a to b", "rename table a to b"),
        ("# TODO: CREATE INDEX later", "CREATE INDEX later"),  # capitals are a statement, comment or not
    ],
)
def test_statements(line: str, statement: str) -> None:
    assert ddl_statement(line) == statement


@pytest.mark.parametrize(
    "line",
    [
        "we alter the table layout",
        "then we alter table layout for mobile",
        "drop table tennis",
        "Let's drop table tennis. Then lunch.",
        "Create table layouts for the shop",
        "created_table = make_table()",
        "CREATE_TABLE_SQL = load('create.sql')",
        "op.alter_table(users)",
        "# TODO: create index later",
        "## CREATE TABLE",
        "SELECT * FROM users WHERE dropped = 1",
    ],
)
def test_near_misses_are_not_statements(line: str) -> None:
    assert ddl_statement(line) is None


def _searched(line: str) -> str | None:
    """The statement each pattern finds searched along the whole line (the first of them):
    what ddl_statement, which tries them only where a statement can begin, must agree with."""
    found = [m.start() for m in (pattern.search(line) for pattern in ddl._PATTERNS) if m]
    if not found:
        return None
    text = line[min(found) :].strip()
    return text if len(text) <= ddl.MAX_TEXT else text[: ddl.MAX_TEXT - 3] + "..."


@pytest.mark.parametrize(
    "line",
    [
        # `İ` lowers to two characters and `ı` matches i: each moves or hides a keyword in lower case
        "x = 'CREATE İNDEX ix ON t (c)'",
        "create ındex ix on t",
        "İİİ then create table users (id int)",
        "ıı alter table t add x",
        "\u212a drop table t;",  # KELVIN SIGN lowers to k in place
        "altered; the table, then ALTER  TABLE users ADD x",  # the second ALTER is the statement
        "drop drop table t;",
        "indexOf(createElement('table')) " * 2000 + "RENAME TABLE a TO b",  # a minified bundle's line
        "0123456789abcdef" * 30000,
    ],
)
def test_where_a_statement_begins_is_found_as_a_search_of_the_line_finds_it(line: str) -> None:
    assert ddl_statement(line) == _searched(line)


def test_long_statement_is_cut() -> None:
    text = ddl_statement("ALTER TABLE users ADD COLUMN " + "x" * 500)
    assert text is not None and len(text) == 160 and text.endswith("...")


# --- real commits ---------------------------------------------------------------------

MODELS = "".join(f"line {i}\n" for i in range(1, 11))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return Repo(tmp_path_factory.mktemp("ddl") / "shop")


def test_sql_migration_names_file_and_line(repo: Repo) -> None:
    sha = repo.commit("Add nick", {"migrations/0002.sql": "-- nicknames\nALTER TABLE users ADD COLUMN nick text;\n"})
    assert find_ddl(repo.path, sha) == [
        DdlHit("migrations/0002.sql", 2, "ALTER TABLE users ADD COLUMN nick text;", "statement")
    ]


def test_path_without_statement(repo: Repo) -> None:
    sha = repo.commit("Data migration", {"migrations/0003_backfill.py": "def up(db):\n    db.backfill()\n"})
    assert find_ddl(repo.path, sha) == [
        DdlHit("migrations/0003_backfill.py", None, "matches ddl path migrations/**", "path")
    ]


def test_deleting_a_migration_touches_the_path(repo: Repo) -> None:
    sha = repo.commit("Drop backfill", {"migrations/0003_backfill.py": None})
    assert [(h.file, h.why) for h in find_ddl(repo.path, sha)] == [("migrations/0003_backfill.py", "path")]


def test_embedded_sql_in_python_with_line_numbers_of_the_new_file(repo: Repo) -> None:
    repo.commit("Models", {"shop/models.py": MODELS})
    new = MODELS.replace("line 3\n", 'line 3\n    db.execute("CREATE UNIQUE INDEX ix_email ON users (email)")\n')
    new = new.replace("line 9\n", "line 9 changed\n    sql = 'DROP TABLE IF EXISTS old_carts'\n")
    sha = repo.commit("Index emails", {"shop/models.py": new})
    hits = find_ddl(repo.path, sha)
    assert [(h.file, h.line, h.why) for h in hits] == [
        ("shop/models.py", 4, "statement"),
        ("shop/models.py", 11, "statement"),
    ]
    assert hits[0].text == 'CREATE UNIQUE INDEX ix_email ON users (email)")'
    assert hits[1].text == "DROP TABLE IF EXISTS old_carts'"


def test_near_miss_commit_is_not_ddl(repo: Repo) -> None:
    sha = repo.commit(
        "Notes",
        {
            "docs/notes.md": "We alter the table layout on mobile.\nAfter lunch: drop table tennis\n",
            "shop/tables.py": "created_table = make()\n# TODO: create index later\n",
        },
    )
    assert find_ddl(repo.path, sha) == []


def test_removed_statement_is_not_ddl(repo: Repo) -> None:
    repo.commit("Add sql", {"shop/old.py": 'SQL = "ALTER TABLE users ADD COLUMN z int"\nKEEP = 1\n'})
    sha = repo.commit("Remove sql", {"shop/old.py": "KEEP = 1\n"})
    assert find_ddl(repo.path, sha) == []


def test_lines_looking_like_file_headers_inside_hunks(repo: Repo) -> None:
    # "-- a" removed shows as "--- a"; "++ b" added shows as "+++ b": neither is a header.
    repo.commit("Notes", {"notes.txt": "-- a\nkeep\n"})
    sha = repo.commit("More", {"notes.txt": "++ b\nkeep\nDROP TABLE IF EXISTS carts;\n"})
    assert find_ddl(repo.path, sha) == [DdlHit("notes.txt", 3, "DROP TABLE IF EXISTS carts;", "statement")]


def test_odd_file_names(repo: Repo) -> None:
    sha = repo.commit(
        "Odd names",
        {
            "sql scripts/café menu.py": "x = 'ALTER TABLE menu ADD COLUMN price int'\n",
            'say "hi".py': "y = 'DROP TABLE greetings;'\n",
            "tab\there.py": "z = 'RENAME TABLE a TO b'\n",
        },
    )
    assert sorted((h.file, h.line) for h in find_ddl(repo.path, sha)) == [
        ('say "hi".py', 1),
        ("sql scripts/café menu.py", 1),
        ("tab\there.py", 1),
    ]


def test_binary_file_in_ddl_path(repo: Repo) -> None:
    sha = repo.commit("Diagram", {"schema/diagram.bin": "\0\1\2ALTER TABLE x ADD y\0"})
    assert find_ddl(repo.path, sha) == [DdlHit("schema/diagram.bin", None, "matches ddl path schema/**", "path")]


def test_custom_paths(repo: Repo) -> None:
    sha = repo.commit("Alembic", {"alembic/versions/1.py": "op.add_column('users', 'nick')\n"})
    assert find_ddl(repo.path, sha) == []
    assert [h.why for h in find_ddl(repo.path, sha, ["alembic/versions/**"])] == ["path"]


def test_unknown_commit(repo: Repo) -> None:
    with pytest.raises(ConsoleError, match="unknown ref 'nope'") as err:
        find_ddl(repo.path, "nope")
    assert "\n" not in str(err.value)


def test_parse_patch_without_counts() -> None:
    patch = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -3 +3 @@\n-old\n+CREATE TABLE t (a int)\n"
    files = parse_patch(patch)
    assert [(f.path, f.added) for f in files] == [("x.py", [(3, "CREATE TABLE t (a int)")])]
