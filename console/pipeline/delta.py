"""A release as the change from the live one: what a host that serves release L lacks of release R.

The deploy host keeps the builds of the last few releases (state_dir/builds), so for a
host at the live release L it knows, without asking, exactly what rsync would find: the
content-hashed assets R names that L's build does not have, and the code files that
differ (rsync's own test for `--link-dest`: type, size, mtime and mode after `--chmod`).
`delta(base, build)` turns that into one small payload, the same for every host, that
one command per host (`console.fleet.remote.stage`) applies over the open connection:
no rsync on either side, no walk of both trees per host.

The payload is what that command reads on its stdin, in order:

    css/new.1a2b3c4d5e.css      the assets in the assets tar, one a line (a host that
    <empty line>                has one already, from an older release, keeps its own)
    <needed: NUL-separated>     the assets R names that are not sent: the host must have them
    <assets tar>                (the command is told the size of these two)
    shop/old.py                 the paths of L that R does not have (or whose type changed)
    <empty line>
    <code tar, to the end>      R's directories, its changed files, REVISION last

The result must be the tree rsync would have made (the lab test compares them): modes
as `--chmod=u+rwX,go+rX,go-w` makes them (`served_mode`), mtimes to the nanosecond,
unchanged files hard links to L's. And the host must really have L as built: `current`
names it, its REVISION is L's and no file of it has an mtime past the build's content
stamps (an edit on the host gives it one), so a host whose L was edited by hand falls back
to rsync, as does any host not at L. (A mode changed or a file removed by hand on a host
is not seen: rsync sees both.)

A payload larger than `MAX_PAYLOAD`, or a name with a newline (the lists are lines), is
not a delta: such a release goes by rsync.
"""

from __future__ import annotations

import grp
import io
import os
import pwd
import stat
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from console.trunk.build import Build

#: A small change: above this, rsync (whose delta transfer sends only what changed in a
#: file) or a bulk fanout moves the bytes better. It stays well inside one SSH channel
#: window (2 MiB), so the payload is sent whole even to a host that stops reading it.
MAX_PAYLOAD = 256 << 10


@dataclass(frozen=True)
class Delta:
    """The change from `base` (L) to `release` (R), and the payload that applies it."""

    base: str  # L's release id
    base_revision: str
    release: str
    payload: bytes
    needed_bytes: int  # the size of the needed block in the payload
    assets_tar: int  # the size of the assets tar in the payload
    assets_part: int  # the payload's bytes up to the end of the assets tar
    new_assets: int  # assets sent
    changed: int  # code files (and links) sent
    deleted: int  # paths of L that R does not have

    @property
    def summary(self) -> str:
        return f"{self.changed} changed, {self.deleted} deleted against {self.base}"


def served_mode(mode: int, is_dir: bool) -> int:
    """The permission bits `rsync --chmod=u+rwX,go+rX,go-w` gives an entry of mode `mode`
    (X: execute where it is a directory or some execute bit is already set)."""
    bits = stat.S_IMODE(mode)
    execute = is_dir or bool(bits & 0o111)
    bits |= 0o644 | (0o111 if execute else 0)
    return bits & ~0o022


@dataclass(frozen=True)
class _Entry:
    kind: str  # "d", "f" or "l" (find's %y)
    mode: int  # served
    size: int
    mtime_ns: int
    target: str  # a link's
    path: Path  # on the deploy host

    def same(self, other: _Entry) -> bool:
        """rsync would hard-link one to the other (`--link-dest`): nothing to send."""
        if self.kind != other.kind:
            return False
        if self.kind == "l":
            return self.target == other.target
        if self.kind == "f":
            return (self.mode, self.size, self.mtime_ns) == (other.mode, other.size, other.mtime_ns)
        return True


class NotADelta(Exception):
    """This release cannot go as a change from that one (the reason says why)."""


def _tree(root: Path) -> dict[str, _Entry]:
    """Every entry under `root` by its relative path (no newlines: the lists are lines)."""
    entries: dict[str, _Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if "\n" in rel:
                raise NotADelta(f"a name with a newline: {rel!r}")
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                kind, target = "d", ""
            elif stat.S_ISREG(st.st_mode):
                kind, target = "f", ""
            elif stat.S_ISLNK(st.st_mode):
                kind, target = "l", os.readlink(path)
            else:
                raise NotADelta(f"{rel}: neither a file, a directory nor a link")
            mode = served_mode(st.st_mode, kind == "d")
            entries[rel] = _Entry(kind, mode, st.st_size, st.st_mtime_ns, target, path)
    return entries


@lru_cache(maxsize=64)
def _owner(uid: int, gid: int) -> tuple[str, str]:
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = ""
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = ""
    return user, group


def _add(tar: tarfile.TarFile, name: str, entry: _Entry) -> None:
    """One entry as rsync -a would leave it: served mode, mtime to the nanosecond, owner."""
    st = entry.path.lstat()
    info = tarfile.TarInfo(name)
    info.mode = entry.mode
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname, info.gname = _owner(st.st_uid, st.st_gid)
    seconds, ns = divmod(entry.mtime_ns, 10**9)
    info.mtime = seconds
    if ns:  # a float mtime puts the exact one in a pax header ("the existing pax header has priority")
        info.mtime = entry.mtime_ns / 10**9
        info.pax_headers = {"mtime": f"{seconds}.{ns:09d}"}
    if entry.kind == "d":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.kind == "l":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
        tar.addfile(info)
    else:
        info.size = st.st_size
        with open(entry.path, "rb") as f:
            tar.addfile(info, f)


def _tar(entries: list[tuple[str, _Entry]]) -> bytes:
    """A tar of `entries` in the order given, ending in its two zero blocks (without the
    padding to 10 KiB that `tarfile` adds: every byte goes to every host)."""
    if not entries:
        return b""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, entry in entries:
            _add(tar, name, entry)
        end = tar.offset
    return out.getvalue()[:end] + bytes(2 * tarfile.BLOCKSIZE)


def _in_tree_order(names: list[str]) -> list[str]:
    """Each directory right before what is in it, as tar lists a tree: GNU tar sets a
    directory's times once it has extracted something outside it, so what goes into a
    directory must come before that."""
    return sorted(names, key=lambda n: Path(n).parts)


def _lines(names: list[str]) -> bytes:
    return "".join(f"{n}\n" for n in names).encode("utf-8", "surrogateescape")


def delta(base: Build, build: Build) -> Delta:
    """The payload that turns a host at `base` into one staged with `build` (see the
    module docstring); NotADelta when it cannot or should not."""
    old_assets, new_assets = _tree(base.assets), _tree(build.assets)
    sent = sorted(n for n, e in new_assets.items() if e.kind == "f" and n not in old_assets)
    needed = sorted(n for n, e in new_assets.items() if e.kind == "f" and n in old_assets)
    if any(e.kind == "l" for e in new_assets.values()):
        raise NotADelta("the assets hold a symbolic link")
    # the directories of the sent assets, so new ones get rsync's modes and times
    parents = {p.as_posix() for n in sent for p in Path(n).parents if p != Path(".")}
    assets_tar = _tar([(n, new_assets[n]) for n in _in_tree_order([*parents, *sent])])

    old_code, new_code = _tree(base.code), _tree(build.code)
    changed = [n for n, e in new_code.items() if e.kind != "d" and (n not in old_code or not e.same(old_code[n]))]
    gone = {n for n, e in old_code.items() if n not in new_code or new_code[n].kind != e.kind}
    # only the topmost of what goes: removing a directory removes what is under it
    deleted = sorted(n for n in gone if not any(p.as_posix() in gone for p in Path(n).parents))
    dirs = [n for n, e in new_code.items() if e.kind == "d"]
    root = _Entry("d", served_mode(build.code.stat().st_mode, True), 0, build.code.stat().st_mtime_ns, "", build.code)
    # every directory (rsync sets their modes and times too), the changed files, and
    # REVISION always and last: the command removes L's from the new release first, so a
    # release whose REVISION is there is staged whole (activate tests it)
    files = [n for n in changed if n != "REVISION"]
    names = _in_tree_order(dirs + files) + (["REVISION"] if "REVISION" in new_code else [])
    code_tar = _tar([(".", root)] + [(n, new_code[n]) for n in names])

    needed_block = "".join(f"{n}\0" for n in needed).encode("utf-8", "surrogateescape")
    assets_part = b"".join([_lines(sent), b"\n", needed_block, assets_tar])
    payload = b"".join([assets_part, _lines(deleted), b"\n", code_tar])
    if len(payload) > MAX_PAYLOAD:
        raise NotADelta(f"{len(payload)} bytes of change, more than {MAX_PAYLOAD}")
    return Delta(
        base=base.release,
        base_revision=base.revision,
        release=build.release,
        payload=payload,
        needed_bytes=len(needed_block),
        assets_tar=len(assets_tar),
        assets_part=len(assets_part),
        new_assets=len(sent),
        changed=len(files),
        deleted=len(deleted),
    )
