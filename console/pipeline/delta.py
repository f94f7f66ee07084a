"""A release as the change from the live one: what a host that serves release L lacks of release R.

The deploy host keeps the builds of the last few releases (state_dir/builds), so for a
host at the live release L it knows, without asking, exactly what rsync would find: the
content-hashed assets R names that L's build does not have, and the code files that
differ (rsync's own test for `--link-dest`: type, size, mtime and mode after `--chmod`).
`delta(base, build)` turns that into a payload, the same for every host, that one
command per host (`console.fleet.remote.stage`) extracts in the deploy path over the
open connection: no rsync on either side, no walk of both trees per host.

Two tars, one after the other, each gzipped (names relative to the deploy path). The
assets' (when any are new), whose staging directory the command removes before the code's:

    assets/.incoming-R/css/new.1a2b3c4d5e.css    each new asset, whole, in a directory of its own
    assets/css/new.1a2b3c4d5e.css -> (hard link)  then its name (tar links once the file is
                                                  complete; a host that has it keeps its own)
The code's:
    releases/R/, releases/R/shop/, ...           R's directories,
    releases/R/shop/app.py -> releases/L/...     hard links to L's files that R has unchanged,
    releases/R/shop/new.py                       its other files and links,
    releases/R/REVISION                          and REVISION last: a release whose REVISION
                                                  is there is staged whole (activate tests it)

So a host's code follows its own assets, and a tar that stops half-way (full disk, cut
link) leaves no partial file under an asset's name, which a later rsync would skip
(`--ignore-existing`). The result is the tree rsync makes (the lab test
compares them): exactly the build's entries, modes as `--chmod=u+rwX,go+rX,go-w` makes
them (`served_mode`), mtimes to the nanosecond, unchanged files hard links to L's; what a
host added to L (a `__pycache__`) is not carried over. The host must really have L as
built: `current` and REVISION name it, every asset R names that is not sent is there,
and L's files that R links have the build's size, mtime and mode (what `stat` prints of
them, `Delta.linked_stat`), or the host says so and gets rsync.

Every byte of the payload goes to every host through the push host's one link, and a tar
is mostly headers (512 bytes an entry, a pax header more for a time to the nanosecond, an
entry for each file linked): gzip makes the code's tar of the lab's shop, 12.5 KiB, less
than 1 KiB, for one `gzip -d` a host.

Tars larger than `MAX_PAYLOAD` (before gzip), a command longer than `MAX_COMMAND` (it
names the files to check) or a name with a newline is not a delta: such a release goes
by rsync.
"""

from __future__ import annotations

import grp
import gzip
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
#: window (2 MiB), so the tar is sent whole even to a host that stops reading it.
MAX_PAYLOAD = 256 << 10
#: The command names every file it checks; a shell command line is one argument of
#: `sh -c`, at most 128 KiB on Linux.
MAX_COMMAND = 96 << 10


@dataclass(frozen=True)
class Delta:
    """The change from `base` (L) to `release` (R), and the tar that applies it."""

    base: str  # L's release id
    base_revision: str
    release: str
    payload: bytes  # the assets tar gzipped (if any assets are new), then the code tar gzipped
    assets_tar: int  # the size of the first, gzipped
    new_assets: tuple[str, ...]  # sent, relative to assets/
    needed: tuple[str, ...]  # not sent: every host must have them already
    brought: tuple[str, ...]  # new, of `needed`: the tree pass brought them (console/pipeline/distribute.py)
    linked: tuple[str, ...]  # R's files hard-linked from L, relative to the release
    linked_stat: str  # what `stat -c remote.LINKED_STAT` prints of them on a host at L
    sent: int  # code files and links sent

    @property
    def summary(self) -> str:
        return f"{self.sent} files sent, {len(self.linked)} linked from {self.base}"


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


def _add(tar: tarfile.TarFile, name: str, entry: _Entry, link: str = "") -> None:
    """One entry as rsync -a would leave it: served mode, mtime to the nanosecond, owner;
    or (`link`) a hard link to that path."""
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
    elif link:
        info.type, info.linkname = tarfile.LNKTYPE, link
        tar.addfile(info)
    elif entry.kind == "l":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
        tar.addfile(info)
    else:
        info.size = st.st_size
        with open(entry.path, "rb") as f:
            tar.addfile(info, f)


def _tar(entries: list[tuple[str, _Entry, str]]) -> bytes:
    """A tar of (name, entry, hard link target or "") in the order given, ending in its two
    zero blocks (without the padding to 10 KiB that `tarfile` adds: every byte goes to
    every host)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, entry, link in entries:
            _add(tar, name, entry, link)
        end = tar.offset
    return out.getvalue()[:end] + bytes(2 * tarfile.BLOCKSIZE)


def _in_tree_order(names: list[str]) -> list[str]:
    """Each directory right before what is in it, as tar lists a tree: GNU tar sets a
    directory's times once it has extracted something outside it, so what goes into a
    directory must come before that."""
    return sorted(names, key=lambda n: Path(n).parts)


def delta(base: Build, build: Build, *, brought: bool = False) -> Delta:
    """The tar that turns a host at `base` into one staged with `build` (see the module
    docstring); NotADelta when it cannot or should not. `brought`: the new assets are on
    the hosts already (the tree pass linked them into assets/ once they matched the
    build's checksums), so none is sent and each is `needed`: a host that lacks one gets
    rsync, which sends it."""
    old_assets, new_assets = _tree(base.assets), _tree(build.assets)
    if any(e.kind == "l" for e in new_assets.values()):
        raise NotADelta("the assets hold a symbolic link")
    fresh = [n for n, e in new_assets.items() if e.kind == "f" and n not in old_assets]
    sent_assets = set() if brought else set(fresh)
    needed = sorted(n for n, e in new_assets.items() if e.kind == "f" and n not in sent_assets)
    incoming, live, release = (
        f"assets/.incoming-{build.release}",
        f"releases/{base.release}",
        f"releases/{build.release}",
    )
    # each new asset whole in the incoming directory, then its name; their directories
    # first, so new ones get rsync's modes and times
    dirs = {p.as_posix() for n in sent_assets for p in Path(n).parents if p != Path(".")}
    entries = [(f"{incoming}/{n}", new_assets[n], "") for n in _in_tree_order([*dirs, *sent_assets])]
    entries += [
        (f"assets/{n}", new_assets[n], f"{incoming}/{n}" if new_assets[n].kind == "f" else "")
        for n in _in_tree_order([*dirs, *sent_assets])
    ]

    assets_entries = len(entries)
    old_code, new_code = _tree(base.code), _tree(build.code)
    # files only (a link is sent: its own times are not the build's), never REVISION
    linked = sorted(
        n for n, e in new_code.items() if e.kind == "f" and n != "REVISION" and n in old_code and e.same(old_code[n])
    )
    root = _Entry("d", served_mode(build.code.stat().st_mode, True), 0, build.code.stat().st_mtime_ns, "", build.code)
    entries.append((release, root, ""))
    linked_set = set(linked)
    names = _in_tree_order([n for n in new_code if n != "REVISION"]) + (["REVISION"] if "REVISION" in new_code else [])
    entries += [(f"{release}/{n}", new_code[n], f"{live}/{n}" if n in linked_set else "") for n in names]

    tars = [_tar(entries[:assets_entries]) if assets_entries else b"", _tar(entries[assets_entries:])]
    size = sum(map(len, tars))
    if size > MAX_PAYLOAD:
        raise NotADelta(f"{size} bytes of change, more than {MAX_PAYLOAD}")
    # the same bytes for every host and every deploy of this change (no time in the header)
    assets_tar, code_tar = (gzip.compress(tar, compresslevel=6, mtime=0) if tar else b"" for tar in tars)
    payload = assets_tar + code_tar
    change = Delta(
        base=base.release,
        base_revision=base.revision,
        release=build.release,
        payload=payload,
        assets_tar=len(assets_tar),
        new_assets=tuple(sorted(sent_assets)),
        needed=tuple(needed),
        brought=tuple(sorted(fresh)) if brought else (),
        linked=tuple(linked),
        linked_stat="\n".join(f"{e.size} {e.mtime_ns // 10**9} {e.mode:o}" for e in (old_code[n] for n in linked)),
        sent=len([n for n in names if n not in linked_set and new_code[n].kind != "d"]),
    )
    return change
