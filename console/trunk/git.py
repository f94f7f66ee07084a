"""Run git for the console: never interactive, never localised, failures as one line.

Every git call in the console goes through `run_git`. It runs `git -C <repo> ...` with
the system config ignored (`GIT_CONFIG_NOSYSTEM=1`), messages in English (`LC_ALL=C`), no
pager, no editor, no credential or SSH prompt, no optional index lock (a refreshing
console must not fight a person's `git status`), and stdin closed unless `input` is given.
Repository-locating variables inherited from a parent git process (`GIT_DIR`, as set in
hooks) are dropped so that `repo` is always the repository used.

A failure becomes a `ConsoleError` whose one line names the git command, the repository,
the exit code and git's own reason.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from console.core.errors import ConsoleError
from console.core.text import is_printable, printable

#: Variables that would make git ignore `-C repo` (see `git rev-parse --local-env-vars`).
_REPO_ENV_VARS = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_DIR",
    "GIT_GRAFT_FILE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_NAMESPACE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_OBJECT_DIRECTORY",
    "GIT_PREFIX",
    "GIT_REPLACE_REF_BASE",
    "GIT_SHALLOW_FILE",
    "GIT_WORK_TREE",
)

DEFAULT_TIMEOUT = 120.0


def git_env() -> dict[str, str]:
    """The environment every console git call runs with."""
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV_VARS}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        LC_ALL="C",
        LANGUAGE="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="",
        SSH_ASKPASS="",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_EDITOR="true",
        GIT_SEQUENCE_EDITOR="true",
        GIT_MERGE_AUTOEDIT="no",
        GIT_OPTIONAL_LOCKS="0",
    )
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def _describe(args: tuple[str, ...]) -> str:
    shown = " ".join(args[:4])
    if len(args) > 4:
        shown += " ..."
    return "git " + shown


def _reason(stderr: str) -> str:
    """git's own reason in one line: the first fatal/error line, else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else "no message on stderr"


def _run(
    repo: Path, args: tuple[str, ...], input: str | None, timeout: float | None
) -> subprocess.CompletedProcess[bytes]:
    repo = Path(repo)
    if not repo.is_dir():
        raise ConsoleError(f"repository {repo} does not exist: expected a directory holding a git repository")
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args],
            input=None if input is None else input.encode("utf-8"),
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            env=git_env(),
            timeout=timeout,
            check=False,
            umask=0o077,  # what git writes in the checkout is private, like the rest of the state dir
        )
    except FileNotFoundError:
        raise ConsoleError("git was not found on PATH: expected git 2.31 or newer to be installed") from None
    except subprocess.TimeoutExpired:
        raise ConsoleError(f"{_describe(args)} in {repo} did not finish within {timeout:g} s") from None


def run_git(repo: Path, *args: str, input: str | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> str:
    """Run `git -C repo *args` and return its stdout (UTF-8, undecodable bytes replaced).

    Raises ConsoleError naming the command, repository, exit code and git's reason on a
    non-zero exit, a missing repository directory, a missing git, or a timeout.
    """
    proc = _run(Path(repo), args, input, timeout)
    if proc.returncode != 0:
        reason = _reason(proc.stderr.decode("utf-8", "replace"))
        raise ConsoleError(f"{_describe(args)} failed in {repo} (exit {proc.returncode}): {reason}")
    return proc.stdout.decode("utf-8", "replace")


def _check_ref_syntax(ref: str) -> None:
    if not ref or ref.startswith("-") or not is_printable(ref) or ref != ref.strip():
        raise ConsoleError(f"ref '{printable(ref, 80)}' is not a valid git ref: expected a branch, tag or commit id")


def _rev_parse(repo: Path, ref: str) -> tuple[str | None, str]:
    """(the commit id `ref` names or None, git's stderr)."""
    _check_ref_syntax(ref)
    proc = _run(Path(repo), ("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"), None, DEFAULT_TIMEOUT)
    sha = proc.stdout.decode("ascii", "replace").strip()
    return (sha if proc.returncode == 0 and sha else None), proc.stderr.decode("utf-8", "replace")


def resolve_commit(repo: Path, ref: str) -> str:
    """The full commit id `ref` names in `repo`; ConsoleError naming the ref if there is none."""
    sha, stderr = _rev_parse(repo, ref)
    if sha:
        return sha
    if "not a git repository" in stderr:
        raise ConsoleError(f"{repo} is not a git repository: expected the trunk repository")
    raise ConsoleError(f"unknown ref {ref!r} in {repo}: expected a branch, tag or commit id that exists there")


def commit_or_none(repo: Path, ref: str) -> str | None:
    """The full commit id `ref` names, or None when it names none (an absent branch or tag)."""
    return _rev_parse(repo, ref)[0]


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """Whether commit `ancestor` is reachable from `descendant` (a commit is its own ancestor)."""
    _check_ref_syntax(ancestor)
    _check_ref_syntax(descendant)
    args = ("merge-base", "--is-ancestor", ancestor, descendant)
    proc = _run(Path(repo), args, None, DEFAULT_TIMEOUT)
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    reason = _reason(proc.stderr.decode("utf-8", "replace"))
    raise ConsoleError(f"{_describe(args)} failed in {repo} (exit {proc.returncode}): {reason}")


def merge_base(repo: Path, a: str, b: str) -> str | None:
    """The best common ancestor of commits `a` and `b`, or None when they share no history."""
    _check_ref_syntax(a)
    _check_ref_syntax(b)
    args = ("merge-base", a, b)
    proc = _run(Path(repo), args, None, DEFAULT_TIMEOUT)
    if proc.returncode == 0:
        return proc.stdout.decode("ascii", "replace").strip() or None
    if proc.returncode == 1:
        return None
    reason = _reason(proc.stderr.decode("utf-8", "replace"))
    raise ConsoleError(f"{_describe(args)} failed in {repo} (exit {proc.returncode}): {reason}")
