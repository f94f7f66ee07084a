"""The tree strategy's pure parts: the shape of the stripes' trees (console/fleet/tree.py)
and the archives they carry (console/pipeline/payload.py)."""

from __future__ import annotations

import hashlib
import math
import tarfile
from pathlib import Path

import pytest

from console.config.inventory import Host
from console.fleet.tree import FANOUT, STRIPES, plan_tree
from console.pipeline.payload import pack
from console.trunk.build import Build


def hosts(n: int) -> list[Host]:
    return [Host(f"web{i:03d}", f"198.18.0.{i + 2}") for i in range(n)]


@pytest.mark.parametrize("n", [2, 3, 7, 50, 200])
def test_every_host_is_in_every_stripe_and_relays_in_one_only(n):
    fleet = hosts(n)
    tree = plan_tree(fleet)
    assert len(set(tree.roots())) == STRIPES  # each stripe has a root of its own
    relays_in = {h.name: 0 for h in fleet}
    for stripe in tree.stripes:
        assert set(stripe) == {h.name for h in fleet}
        fed = [c.name for feed in stripe.values() for c in feed.children]
        assert sorted(fed) == sorted(h.name for h in fleet if stripe[h.name].parent is not None)
        for name, feed in stripe.items():
            assert len(feed.children) <= FANOUT
            relays_in[name] += bool(feed.children)
    assert max(relays_in.values()) <= 1  # what a host sends is at most what it receives
    assert tree.depth <= math.ceil(math.log2(n + 1)) + 1


def test_a_tree_needs_a_root_per_stripe():
    with pytest.raises(ValueError):
        plan_tree(hosts(1))


def test_the_archives_hold_only_the_new_assets_balanced_with_their_checksums(tmp_path: Path):
    def build(name: str, assets: dict[str, bytes]) -> Build:
        root = tmp_path / name
        for rel, data in assets.items():
            (root / "assets" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "assets" / rel).write_bytes(data)
        (root / "code").mkdir(parents=True)
        return Build(name, "0" * 40, root, {})

    old = build("r1", {"css/a.1.css": b"a"})
    new = build("r2", {"css/a.1.css": b"a", **{f"img/{n}.bin": bytes([n]) * (1000 * (n + 1)) for n in range(6)}})
    payload = pack(new, old, STRIPES)
    assert payload.files == 6 and len(payload.archives) == STRIPES
    names = []
    for path in payload.archives:
        with tarfile.open(path) as tar:
            names += tar.getnames()
    assert sorted(names) == sorted(f"assets/img/{n}.bin" for n in range(6))
    assert abs(payload.sizes[0] - payload.sizes[1]) < 3000  # dealt out by size
    want = {f"assets/img/{n}.bin": hashlib.sha256(bytes([n]) * (1000 * (n + 1))).hexdigest() for n in range(6)}
    got = dict(reversed(line.split("  ")) for line in payload.sums.decode().splitlines())
    assert got == want
    payload.remove()
    assert not any(p.exists() for p in payload.archives)
