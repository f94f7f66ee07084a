"""The watch after a push, in a process of its own (`python -m console.session.watcher`).

Neither the terminal nor the lock waits for the watch window: the deploy starts this
process once its hosts are switched and returns. It compares the key metrics with their
baseline until the window ends or a newer deploy starts (which watches from its own
activation), and its verdicts join the deploy's event log, history and webhooks.
"""

from __future__ import annotations

import argparse
import json
import sys

from console.config.inventory import Inventory, load_inventory
from console.core.events import DeployDone
from console.metrics.watch import Watch
from console.session.bus import Bus
from console.session.notify import Notifier
from console.session.spawn import runs_dir, spawn
from console.state.eventlog import EventLog
from console.state.history import History

MODULE = "console.session.watcher"


def start_watcher(inventory: Inventory, deploy_id: str, *, baseline_end: float, activated: float) -> None:
    """Watch `deploy_id`'s key metrics from `activated` on, in a process of its own."""
    job = {"deploy_id": deploy_id, "baseline_end": baseline_end, "activated": activated}
    spawn(MODULE, inventory, job, runs_dir(inventory) / f"watch-{deploy_id}.out")


def watch(inventory: Inventory, deploy_id: str, baseline_end: float, activated: float) -> None:
    """The watcher process: verdicts until the window ends or a newer deploy starts."""
    log, history = EventLog(inventory.state_dir), History(inventory.state_dir)
    notifier = Notifier(inventory.webhooks, inventory.environment)
    for event in log.read(deploy_id):  # the notifier needs the deploy's story
        if not isinstance(event, DeployDone):  # already announced by the deploy itself
            notifier.record(event)
    writer = log.writer(deploy_id)
    bus = Bus()
    bus.subscribe("event log", writer)
    bus.subscribe("history", history.record)
    bus.subscribe("webhook notifier", notifier.record)
    running = Watch(inventory, deploy_id=deploy_id, baseline_end=baseline_end, emit=bus, activated=activated).start()
    while not running.join(1.0):
        if log.latest() != deploy_id:
            running.stop()  # superseded: the next deploy watches from its own activation
    notifier.close()
    writer.close()
    history.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--job", required=True)
    args = parser.parse_args(argv)
    job = json.loads(args.job)
    watch(load_inventory(args.inventory), job["deploy_id"], job["baseline_end"], job["activated"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
