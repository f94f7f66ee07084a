"""A throwaway git repository for tests: fixed authors and dates, no machine config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: The first commit's time; each commit is a minute after the one before.
T0 = 1_700_000_000


class Repo:
    """A throwaway git repository whose commits have fixed authors and dates."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.when = T0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_DATE": f"@{self.when} +0000",
            "GIT_COMMITTER_DATE": f"@{self.when} +0000",
        }
        cmd = ["git", "-C", str(self.path), "-c", "user.name=Alice Adams", "-c", "user.email=alice@example.com"]
        cmd += ["-c", "commit.gpgsign=false", *args]
        return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout

    def commit(self, message: str, files: dict[str, str | None] | None = None, *, author: str | None = None) -> str:
        """Write (or delete, for None) `files`, commit them all, return the new sha."""
        self.when += 60
        for name, content in (files or {}).items():
            target = self.path / name
            if content is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        self.git("add", "-A")
        extra = ["--author", author] if author else []
        self.git("commit", "-q", "--allow-empty", "--no-verify", *extra, "-m", message)
        return self.head()

    def merge(self, branch: str, message: str) -> str:
        self.when += 60
        self.git("merge", "-q", "--no-ff", "--no-edit", "-m", message, branch)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()
