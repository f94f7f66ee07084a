"""The `build` phase ("builda"): a release tree and its versioned assets.

Assets get content-hashed file names (`css/shop.css` -> `css/shop.3f2a9c1d0b.css`)
rather than a directory per release. Both let old and new assets live side by side on a
host, but with hashed names an asset that did not change keeps its name, so rsync never
sends it again and a host holds one copy of it however many releases refer to it. The
release's `manifest.json` maps each logical path to its versioned URL; the app resolves
asset URLs through it, so a page rendered by a release only names assets of that release.

CSS and JS are minified with rcssmin / rjsmin (maintained, dependency-free) before hashing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import rcssmin
import rjsmin

from console.config.inventory import Inventory
from console.core.errors import ConsoleError

HASH_LENGTH = 10


@dataclass(frozen=True)
class Build:
    """What the sync phases send: `code/` goes to releases/<id>, `assets/` to assets/."""

    release: str
    revision: str
    root: Path
    manifest: dict[str, str]

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def assets(self) -> Path:
        return self.root / "assets"


def stored_build(builds: Path, release: str) -> Build:
    """The build of `release` kept in `builds` (state_dir/builds); ConsoleError if it is not
    there whole."""
    root = builds / release
    try:
        manifest = json.loads((root / "code" / "manifest.json").read_text())
        revision = (root / "code" / "REVISION").read_text().strip()
    except (OSError, ValueError):
        raise ConsoleError(f"no build of {release} in {builds}") from None
    if not (root / "assets").is_dir():
        raise ConsoleError(f"no build of {release} in {builds}: it has no assets directory")
    return Build(release, revision, root, manifest)


def _minify(path: Path, data: bytes) -> bytes:
    if path.suffix == ".css":
        return rcssmin.cssmin(data.decode("utf-8")).encode("utf-8")
    if path.suffix == ".js":
        return rjsmin.jsmin(data.decode("utf-8")).encode("utf-8")
    return data


def hashed_name(relative: Path, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()[:HASH_LENGTH]
    return relative.with_name(f"{relative.stem}.{digest}{relative.suffix}")


def run_build_command(inventory: Inventory, tree: Path) -> None:
    """The inventory's optional `build.command`, run in the release tree before builda."""
    command = inventory.build_command
    if not command:
        return
    try:
        proc = subprocess.run(
            command,
            shell=True,
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=inventory.timeouts.sync,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ConsoleError(f"build.command {command!r} did not finish within {inventory.timeouts.sync:g} s") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConsoleError(f"build.command {command!r} exited {proc.returncode}: {last[0]}")


def build_assets(inventory: Inventory, tree: Path, out: Path) -> dict[str, str]:
    """Move the tree's assets directory into `out` under hashed names; returns the manifest."""
    source = tree / inventory.assets
    if not source.is_dir():
        raise ConsoleError(
            f"the release has no assets directory {inventory.assets + '/'!r}: "
            f"expected the directory named by the inventory key assets ({inventory.path})"
        )
    manifest: dict[str, str] = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(source)
        data = _minify(path, path.read_bytes())
        target = out / hashed_name(relative, data)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        manifest[relative.as_posix()] = "/assets/" + target.relative_to(out).as_posix()
    shutil.rmtree(source)
    return manifest


def build_release(inventory: Inventory, tree: Path, root: Path, release: str, revision: str) -> Build:
    """Turn an exported tree (`root/code`) into a release: run build.command, hash the
    assets into `root/assets`, write REVISION and manifest.json into the code."""
    run_build_command(inventory, tree)
    manifest = build_assets(inventory, tree, root / "assets")
    (tree / "REVISION").write_text(revision + "\n")
    (tree / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    stamp_by_content(tree)
    return Build(release, revision, root, manifest)


def stamp_by_content(tree: Path) -> None:
    """Give every file an mtime derived from its content.

    rsync's quick check (size and mtime) decides which files `--link-dest` hard-links to
    the live release. git archive stamps every file with the commit's time, so no file
    would ever match; a build-time stamp would wrongly match a changed file of the same
    size (REVISION!) written in the same second. A content-derived mtime matches exactly
    when the content does, without rsync reading every file on both sides (--checksum).
    """
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            stamp = 1_000_000_000 + int(digest[:7], 16)
            os.utime(path, (stamp, stamp))
