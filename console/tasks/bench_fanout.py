"""`invoke bench.fanout`: a big change through the fleet (strategy tree) against every host
by rsync from the push host (chunked), on a lab whose every link is shaped.

One lab of `--hosts` hosts, every link (the deploy machine's too) shaped to `--rate` with
tc (`lab.up --rate`), sshd only (no shop). After a first deploy (not measured), each run
deploys with each strategy in turn, alternating which goes first, in this one process:
a fresh release of `--size` MB of new assets (random hex in 8 files; nothing on the way
compresses them), then a one-file change. It prints medians of the runs: the wall time
of each, the big deploy's cost over the one-file one in units of S/B (S the size, B the
rate: the time one copy of the change takes over one link), the bytes the push host sent
(its link's shaper's counter) and the aggregate rate the fleet took the change in; then
tree's ratios against chunked. The hosts share this machine's cores: the load average
is printed with the figures. On 200 lab hosts the hosts' sshds, starting their parts all
at once on 2 cores, went more than 5 s without answering a keepalive (6 hosts failed "no
answer for 5 s"): the lab's CPU, not a frozen host, so a lab of more than `CROWDED` hosts
gets `timeouts.connect` of `CROWDED_CONNECT` s.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from invoke import task
from invoke.exceptions import Exit

from console.config.inventory import Inventory, load_inventory
from console.core.errors import ConsoleError
from console.pipeline.plan import DeployRequest
from console.tasks.errors import clear_errors
from console.tasks.flags import number, whole_number

STRATEGIES = ("chunked", "tree")
FILES = 8


def _egress(device: str) -> int:
    """Bytes the push host's lab link has carried (counted after its shaper: not what it dropped)."""
    return int(Path(f"/sys/class/net/{device}/statistics/tx_bytes").read_text())


#: more lab hosts than this on 2 cores, and a starved host's sshd can be silent for 5 s
CROWDED, CROWDED_CONNECT = 100, 15


def _measure(
    hosts: int, rate: str, size: int, runs: int, strategies: tuple[str, ...]
) -> dict[str, dict[str, list[float]]]:
    from console.demo.trunk import commit_change, create_trunk
    from console.lab import Lab, layout
    from console.lab import state as labstate
    from console.session.runs import run_deploy

    lab = Lab(f"fanout{hosts}")
    figures: dict[str, dict[str, list[float]]] = {s: {"big": [], "small": [], "egress": []} for s in strategies}
    with tempfile.TemporaryDirectory() as tmp:
        trunk = create_trunk(Path(tmp) / "trunk.git")
        path = lab.up(hosts, rate=rate, inventory_path=Path(tmp) / "bench.yaml", extra={"repo": str(trunk.path)})
        try:
            device = layout.deploy_ifb(labstate.require(lab.name).slot)
            data = yaml.safe_load(path.read_text())
            data["state_dir"] = str(Path(tmp) / "state")
            if hosts > CROWDED:
                data["timeouts"] = {**data.get("timeouts", {}), "connect": CROWDED_CONNECT}
            inventories: dict[str, Inventory] = {}
            for strategy in strategies:
                path.write_text(yaml.safe_dump({**data, "strategy": strategy}))
                inventories[strategy] = load_inventory(path)
            first = run_deploy(inventories[strategies[0]], DeployRequest(user="bench", override="bench"))
            if first.result != "ok":
                raise ConsoleError(f"bench fanout: the first deploy ended {first.result}: {first.message}")
            for i in range(runs):
                for strategy in strategies if i % 2 == 0 else strategies[::-1]:
                    inventory = inventories[strategy]
                    files = {
                        f"assets/img/bench-{i}-{strategy}-{n}.bin": os.urandom(size // FILES).hex()[: size // FILES]
                        for n in range(FILES)
                    }
                    for kind, change in (("big", files), ("small", {"shop/VERSION_NOTE.txt": f"{i} {strategy}\n"})):
                        sha = commit_change(trunk, dict(change), f"Bench fanout {kind} change {i} ({strategy})")
                        sent, t0 = _egress(device), time.perf_counter()
                        done = run_deploy(inventory, DeployRequest(user="bench", ref=sha, override="bench"))
                        wall = time.perf_counter() - t0
                        if done.result != "ok":
                            raise ConsoleError(
                                f"bench fanout ({strategy}, {kind}) ended {done.result}: {done.message}; "
                                f"{done.hosts_failed[:2]}"
                            )
                        figures[strategy][kind].append(wall)
                        if kind == "big":
                            figures[strategy]["egress"].append(_egress(device) - sent)
            return figures
        finally:
            lab.down()


@task(
    help={
        "hosts": "hosts in the lab (default 50)",
        "rate": "every link's rate, tc units (default 20mbit; root only)",
        "size": "MB of new assets in the big change (default 4)",
        "runs": "runs per strategy; the median is printed (default 3)",
        "strategies": "comma-separated strategies to measure (default chunked,tree): chunked alone costs N·S/B, "
        "27 minutes a deploy of 1 MB to 200 hosts at 1 Mbit/s",
    }
)
@clear_errors
def fanout(c, hosts=None, rate="20mbit", size=None, runs=None, strategies="chunked,tree"):
    """Measure a big change deployed with strategy tree against chunked, on a shaped lab."""
    from console.lab import shaping

    n = whole_number(hosts, "--hosts", default=50, low=2)
    megabytes = number(size, "--size", default=4.0)
    count = whole_number(runs, "--runs", default=3)
    chosen = tuple(dict.fromkeys(name.strip() for name in str(strategies).split(",") if name.strip()))
    if not chosen or any(name not in STRATEGIES for name in chosen):
        raise Exit(f"error: --strategies: expected some of {', '.join(STRATEGIES)}, got {strategies!r}", code=1)
    try:
        per_sec = shaping.parse_rate(rate)
    except ConsoleError as exc:
        raise Exit(f"error: --rate: {exc}", code=1) from None
    s = int(megabytes * 1_000_000)
    unit = s / per_sec  # S/B in seconds (parse_rate gives bytes per second)
    before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    figures = _measure(n, rate, s, count, chosen)
    after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{n} hosts, every link {rate}, S = {megabytes:g} MB of new assets (S/B = {unit:.2f} s), "
        f"median of {count} runs per strategy; load average {before} before, {after} after"
    )
    print(
        f"  {'strategy':<9} {'big s':>7} {'one-file s':>11} {'(big-one)/(S/B)':>16} {'push MB sent':>13} {'fleet MB/s':>11}"
    )
    rows = {}
    for strategy, f in figures.items():
        big, small, egress = (statistics.median(f[k]) for k in ("big", "small", "egress"))
        rows[strategy] = (big, small, (big - small) / unit, egress / 1e6, n * s / 1e6 / big)
        print(
            f"  {strategy:<9} {big:>7.2f} {small:>11.2f} {rows[strategy][2]:>16.1f} {egress / 1e6:>13.1f} "
            f"{rows[strategy][4]:>11.1f}"
        )
    for strategy, f in figures.items():  # run by run: a big deploy and the one-file one right after it
        each = ", ".join(f"{(b - o) / unit:.1f}" for b, o in zip(f["big"], f["small"], strict=True))
        print(f"  {strategy}: (big-one)/(S/B) run by run: {each}")
    if set(rows) != set(STRATEGIES):
        return
    ratio = [t / c if c else float("nan") for t, c in zip(rows["tree"], rows["chunked"], strict=True)]
    print(
        f"  {'tree/chunked':<9} {ratio[0]:>4.2f} {ratio[1]:>11.2f} {ratio[2]:>16.2f} {ratio[3]:>13.2f} {ratio[4]:>11.2f}"
    )
