"""What the tree strategy carries: the new assets of a release, the bulk of a big change.

A host at the live release L has every asset L's build has; assets are content-hashed, so
a name L has is the same bytes. Of a new release R's assets it lacks exactly those L's
build does not have: what rsync `--ignore-existing` would send it. `pack` writes them into
uncompressed tars (one per stripe) in R's build directory, with the checksum of each,
which every host verifies before it uses a byte of what its peers sent:

    assets/css/new.1a2b3c4d5e.css      a new asset, under its name in the assets directory

The code is not carried: it goes by rsync from the push host, hard-linked against the
live release (only the changed files travel), as in every deploy. Without L's build (the
deploy host keeps the last few) every asset is carried. Names that `sha256sum` would
escape (a newline, a backslash) and anything but regular files are left to rsync, which
runs after the tree anyway.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from console.pipeline.delta import served_mode
from console.trunk.build import Build

#: The archives' names in the build directory: tree-stripe1.tar, ...
ARCHIVE_STEM = "tree-stripe"
#: Pieces an archive is read in, to feed a stripe to its root.
PIECE = 65536


@dataclass(frozen=True)
class Payload:
    """The archives of the new assets, one per stripe, and what a host checks them against."""

    archives: tuple[Path, ...]
    sizes: tuple[int, ...]  # of each archive
    files: int
    #: `sha256sum -c` input: one "DIGEST  NAME" line per file, names as in the archives
    sums: bytes

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def pieces(self, stripe: int) -> Iterator[bytes]:
        """The bytes of one stripe's archive, `PIECE` at a time."""
        with open(self.archives[stripe], "rb") as f:
            while data := f.read(PIECE):
                yield data

    def remove(self) -> None:
        """The archives are copies of the build's new assets: gone once the pass is over."""
        for path in self.archives:
            path.unlink(missing_ok=True)


def new_assets(build: Build, base: Build | None) -> list[str]:
    """The build's asset files (relative to its assets directory) a host at `base` lacks."""
    found = []
    for dirpath, dirnames, filenames in os.walk(build.assets):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(build.assets).as_posix()
            if "\n" in rel or "\\" in rel or not stat.S_ISREG(path.lstat().st_mode):
                continue
            if base is not None and (base.assets / rel).exists():
                continue
            found.append(rel)
    return found


def pack(build: Build, base: Build | None, stripes: int) -> Payload:
    """Write the archives of what a host at `base` lacks of `build`'s assets (see the
    module docstring): the files dealt out by size, largest first, to the lightest of
    `stripes` tars, so that each stripe is a whole archive of its own (a host that gets one
    stripe whole can use it, whatever happened to the other)."""
    names = sorted(new_assets(build, base), key=lambda rel: -(build.assets / rel).stat().st_size)
    groups: list[list[str]] = [[] for _ in range(stripes)]
    weight = [0] * stripes
    for rel in names:
        j = weight.index(min(weight))
        groups[j].append(rel)
        weight[j] += (build.assets / rel).stat().st_size
    sums = []
    archives = []
    for j, group in enumerate(groups):
        path = build.root / f"{ARCHIVE_STEM}{j + 1}.tar"
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
            for rel in sorted(group):
                file = build.assets / rel
                data = file.read_bytes()
                info = tarfile.TarInfo(f"assets/{rel}")
                info.size, info.mtime = len(data), int(file.stat().st_mtime)
                info.mode = served_mode(file.stat().st_mode, False)
                tar.addfile(info, io.BytesIO(data))
                sums.append(f"{hashlib.sha256(data).hexdigest()}  assets/{rel}\n")
        archives.append(path)
    return Payload(
        tuple(archives), tuple(p.stat().st_size for p in archives), len(sums), "".join(sorted(sums)).encode()
    )
