"""A hand-made deploy layout for the demo shop, without the deploy engine.

The engine builds releases for real (build, assets-first sync, atomic `current` switch);
this module makes the same layout locally in a few lines, so the shop, the traffic
generator and their tests can run on it:

    {deploy_path}/assets/<dir>/<name>.<hash>.<ext>
    {deploy_path}/releases/<id>/            a tree of the shop source
    {deploy_path}/releases/<id>/REVISION     40-char commit id
    {deploy_path}/releases/<id>/manifest.json
    {deploy_path}/current -> releases/<id>
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
from importlib import resources
from pathlib import Path

from console.core.errors import ConsoleError

HASH_LENGTH = 10


def shop_source() -> Path:
    """The directory holding the demo shop's source (the content of the demo trunk)."""
    return Path(str(resources.files("console.demo") / "shop"))


def hashed_name(name: str, digest: str) -> str:
    """`shop.css` -> `shop.<digest>.css`; a name without an extension gets `.<digest>` appended."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{digest}.{ext}" if dot and stem else f"{name}.{digest}"


def build_assets(source: Path, deploy_path: Path, assets_dir: str = "assets") -> dict[str, str]:
    """Copy every file under `source/assets_dir` to `deploy_path/assets/` under its
    content-hashed name; returns the manifest (logical path -> versioned URL)."""
    root = Path(source) / assets_dir
    if not root.is_dir():
        raise ConsoleError(f"{root}: no assets directory; expected the shop source tree")
    manifest: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        logical = path.relative_to(root).as_posix()
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:HASH_LENGTH]
        rel = Path(logical).parent / hashed_name(path.name, digest)
        target = Path(deploy_path) / "assets" / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        manifest[logical] = "/assets/" + rel.as_posix()
    return manifest


def install_release(
    source: Path,
    deploy_path: Path,
    release_id: str,
    revision: str,
    *,
    activate: bool = True,
    assets: bool = True,
) -> Path:
    """Copy the tree `source` to releases/<release_id>, write REVISION and manifest.json,
    copy its hashed assets (unless `assets=False`: the "assets not there yet" fault) and
    point `current` at it (unless `activate=False`). Returns the release directory."""
    if len(revision) != 40:
        raise ConsoleError(f"revision {revision!r}: expected a full 40-character commit id")
    deploy_path = Path(deploy_path)
    release = deploy_path / "releases" / release_id
    if release.exists():
        raise ConsoleError(f"{release}: the release already exists; expected a new release id")
    release.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, release, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
    if assets:
        manifest = build_assets(source, deploy_path)
    else:
        with_assets = deploy_path / ".manifest-only"
        manifest = build_assets(source, with_assets)
        shutil.rmtree(with_assets)
    (release / "REVISION").write_text(revision + "\n")
    (release / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (deploy_path / "run").mkdir(exist_ok=True)
    if activate:
        activate_release(deploy_path, release_id)
    return release


def activate_release(deploy_path: Path, release_id: str) -> None:
    """Point `current` at releases/<release_id> atomically (a new symlink renamed over it)."""
    deploy_path = Path(deploy_path)
    if not (deploy_path / "releases" / release_id).is_dir():
        raise ConsoleError(f"{deploy_path}/releases/{release_id}: no such release")
    tmp = deploy_path / f".current.{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(Path("releases") / release_id)
    os.replace(tmp, deploy_path / "current")


def export_commit(repo: Path, commit: str, dest: Path) -> str:
    """Write the tree of `commit` in the git repository `repo` to `dest` (created); returns
    the full commit id."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    try:
        full = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--verify", f"{commit}^{{commit}}"],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", full], check=True, capture_output=True, env=env
        ).stdout
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or "").strip().splitlines()
        raise ConsoleError(f"{repo}: cannot export {commit!r}: {lines[-1] if lines else 'git failed'}") from None
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return full


HOST_PYTHON = "/usr/bin/python3"
"""Debian's python3: the hosts run the shop's ctl.py and gunicorn (Debian's package) on it."""


def shop_ctl(
    deploy_path: Path,
    command: str,
    *,
    bind: str = "127.0.0.1:8080",
    statsd: str = "",
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run `ctl.py COMMAND` of the current release locally, as the engine's `restart` runs it
    over ssh; returns the finished process (check `.returncode`, `.stdout`, `.stderr`)."""
    ctl = Path(deploy_path) / "current" / "ctl.py"
    return subprocess.run(
        [HOST_PYTHON, "-I", "-S", str(ctl), command, f"--bind={bind}", f"--statsd={statsd}", f"--timeout={timeout}"],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        stdin=subprocess.DEVNULL,
    )


def kill_shop(deploy_path: Path) -> None:
    """Stop the shop of `deploy_path` for sure (for test finalizers): `ctl.py stop`, then
    SIGKILL the gunicorn master its pid file names and that master's workers."""
    deploy_path = Path(deploy_path)
    try:
        master = int((deploy_path / "run" / "gunicorn.pid").read_text().strip())
    except (OSError, ValueError):
        return
    if (deploy_path / "current" / "ctl.py").exists():
        try:
            shop_ctl(deploy_path, "stop", timeout=10)
        except subprocess.TimeoutExpired:
            pass
    for pid in [master, *_children(master)]:
        try:
            if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1] == str(pid):
                found.append(int(entry))
        except (OSError, IndexError):
            pass
    return found
