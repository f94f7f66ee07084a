"""The tree strategy's shape: which host feeds which.

From one push host, every byte of a release goes out N times: N·S/B (chunked fanout). A
tree of relays cuts that to the tree's depth, and a relay that passes each piece on as it
arrives (pipelined) cuts it further, to about one S/B plus a little per level. But a relay
with two children sends twice what it receives, so a binary tree costs 2·S/B, and a chain
(one child each) is as deep as the fleet. SplitStream's answer (Castro et al., 2003), the
one built here: cut the data in `STRIPES` parts and give each part a tree of its own, with
each host a relay in one tree only and a leaf in the others. Every host then receives S and
sends about S, whatever the fleet's size, and the release reaches every host in about S/B
plus the depth of the trees (log2 N levels).

Stripe j's tree holds every host: first the hosts whose position in the fleet is j modulo
`STRIPES` (its relays), then the others (its leaves), laid out as a heap: the host at place
p feeds the hosts at places `FANOUT`·p+1 .. `FANOUT`·p+`FANOUT`. The push host feeds place 0,
the stripe's root, over that host's own SSH connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from console.config.inventory import Host

#: Parts of the data, each down its own tree (a host relays one of them).
STRIPES = 2
#: Children of a relay: with `STRIPES` stripes, what a relay sends equals what it receives.
FANOUT = 2


@dataclass(frozen=True)
class Feed:
    """A host's place in one stripe's tree: who feeds it (None: the push host), whom it feeds."""

    stripe: int
    parent: Host | None
    children: tuple[Host, ...]
    level: int  # 1 for the root, which the push host feeds


@dataclass(frozen=True)
class Tree:
    """Every stripe's tree over the same hosts."""

    hosts: tuple[Host, ...]
    stripes: tuple[dict[str, Feed], ...]  # per stripe: host name -> its place

    def feeds(self, host: Host) -> list[Feed]:
        """The host's place in each stripe's tree, in stripe order."""
        return [stripe[host.name] for stripe in self.stripes]

    def roots(self) -> list[Host]:
        """The host the push host feeds, per stripe."""
        return [next(h for h in self.hosts if stripe[h.name].parent is None) for stripe in self.stripes]

    @property
    def depth(self) -> int:
        """Levels of the deepest tree: how many relays the last piece passes, the push host's included."""
        return max(feed.level for stripe in self.stripes for feed in stripe.values())

    def describe(self) -> list[str]:
        """Who feeds whom, one line per stripe, as --dry-run and the deploy dialog show it."""
        lines = []
        for j, stripe in enumerate(self.stripes):
            feeds = [f"push host → {self.roots()[j].name}"]
            for host in self.hosts:
                children = stripe[host.name].children
                if children:
                    feeds.append(f"{host.name} → {', '.join(c.name for c in children)}")
            lines.append(f"stripe {j + 1}: " + "; ".join(feeds))
        return lines


def plan_tree(hosts: Sequence[Host]) -> Tree:
    """The trees of `hosts` (see the module docstring); needs at least `STRIPES` hosts, so
    that each stripe has a root of its own."""
    if len(hosts) < STRIPES:
        raise ValueError(f"a tree needs at least {STRIPES} hosts, got {len(hosts)}")
    stripes = []
    for j in range(STRIPES):
        order = [h for i, h in enumerate(hosts) if i % STRIPES == j] + [
            h for i, h in enumerate(hosts) if i % STRIPES != j
        ]
        places: dict[str, Feed] = {}
        for p, host in enumerate(order):
            parent = order[(p - 1) // FANOUT] if p else None
            children = tuple(order[FANOUT * p + 1 : FANOUT * p + 1 + FANOUT])
            level = 1 if parent is None else places[parent.name].level + 1
            places[host.name] = Feed(j, parent, children, level)
        stripes.append(places)
    return Tree(tuple(hosts), tuple(stripes))
