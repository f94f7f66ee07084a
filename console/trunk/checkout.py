"""The deploy host's checkout of trunk (the `update` phase).

The checkout lives in the state directory and is fetched, never re-cloned, so an
update costs one `git fetch`. Several processes share it (a deploy, a console refreshing
its queue), so every change to it happens under a file lock. Building never runs in the
checkout itself: `export` writes a clean tree of one commit (no `.git`, no stray files).
A checkout that a failed first run left without its `origin`, or that is no repository
any more, heals on the next update.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from console.config.inventory import Inventory
from console.core.errors import ConsoleError
from console.core.text import short
from console.trunk.git import commit_or_none, git_env, resolve_commit, run_git


class Checkout:
    """A clone of the inventory's trunk repository under `state_dir/checkout`."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.path = inventory.state_dir / "checkout"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.inventory.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.inventory.state_dir / "checkout.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConsoleError(f"{self.inventory.state_dir}: cannot open the checkout lock: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the flock

    def _origin(self, repo: str) -> None:
        """A repository in the checkout whose `origin` is `repo`: made the first time, its
        URL set when the inventory's repo changed, re-added when a failed first run left
        none, and made again when the directory is no repository any more."""
        remotes: list[str] | None = None
        if (self.path / ".git").is_dir():
            try:
                remotes = run_git(self.path, "remote").split()
            except ConsoleError:
                shutil.rmtree(self.path, ignore_errors=True)
        if remotes is None:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            run_git(self.path, "init", "--quiet")
            remotes = []
        run_git(self.path, "remote", "set-url" if "origin" in remotes else "add", "origin", repo)

    def update(self) -> None:
        """Fetch trunk into the checkout (cloning it the first time)."""
        repo = self.inventory.repo
        with self._locked():
            self._origin(repo)
            try:
                run_git(
                    self.path, "fetch", "--quiet", "--prune", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"
                )
            except ConsoleError as exc:
                raise ConsoleError(f"cannot fetch trunk from {repo}: {str(exc).split(': ', 1)[-1]}") from None

    def tip(self) -> str:
        """The full commit id at the tip of the inventory's branch."""
        branch = self.inventory.branch
        try:
            return resolve_commit(self.path, f"refs/remotes/origin/{branch}")
        except ConsoleError:
            raise ConsoleError(
                f"{self.inventory.repo} has no commits on branch {branch!r}: "
                f"expected the trunk branch named by the inventory key branch"
            ) from None

    def resolve(self, ref: str | None) -> str:
        """The full commit id of `ref`; default the tip. A name is a branch, a tag or a
        commit id, in that order, so `main` is the branch even beside a commit id that
        starts so; a name that is both a branch and a tag of different commits is refused,
        naming both (`refs/heads/NAME` or `refs/tags/NAME` says which)."""
        if not ref:
            return self.tip()
        name = ref.removeprefix("refs/heads/")
        branch = commit_or_none(self.path, f"refs/remotes/origin/{name}")
        if ref.startswith("refs/heads/"):
            if branch is None:
                raise ConsoleError(f"unknown branch {name!r} in {self.inventory.repo}: expected a branch of trunk")
            return branch
        tag = commit_or_none(self.path, f"refs/tags/{ref}")
        if branch and tag and branch != tag:
            raise ConsoleError(
                f"ref {ref!r} is ambiguous: branch {ref} is {short(branch)} and tag {ref} is {short(tag)}; "
                f"expected refs/heads/{ref} or refs/tags/{ref}"
            )
        found = branch or tag or commit_or_none(self.path, ref)
        if found is None:
            raise ConsoleError(
                f"unknown ref {ref!r} in {self.inventory.repo}: expected a commit id, tag or branch of trunk"
            )
        return found

    def has_dir(self, sha: str, path: str) -> bool:
        """Whether commit `sha` holds a directory at `path`."""
        try:
            return run_git(self.path, "cat-file", "-t", f"{sha}:{path}").strip() == "tree"
        except ConsoleError:
            return False

    def export(self, sha: str, dest: Path) -> None:
        """Write the tree of commit `sha` into `dest` (which must not exist yet)."""
        dest.mkdir(parents=True)
        proc = subprocess.run(
            ["git", "-C", str(self.path), "archive", "--format=tar", sha],
            capture_output=True,
            env=git_env(),
            stdin=subprocess.DEVNULL,
            check=False,
            umask=0o077,
        )
        if proc.returncode != 0:
            reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise ConsoleError(f"git archive {short(sha)} failed in {self.path}: {reason[0]}")
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            tar.extractall(dest, filter="data")

    def subject(self, sha: str) -> str:
        return run_git(self.path, "log", "-1", "--format=%s", sha).strip()

    def count(self, old: str | None, new: str) -> int:
        """How many commits `new` adds on top of `old` (all of them if old is None)."""
        span = f"{old}..{new}" if old else new
        try:
            return int(run_git(self.path, "rev-list", "--count", "--first-parent", span).strip())
        except ConsoleError:
            return 0
