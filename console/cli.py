"""`deploy-console`: open the console on an inventory, or on the demo fleet.

deploy-console -i hosts/production.yaml
deploy-console --demo
deploy-console -i hosts/production.yaml --web [--bind 127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from console.core.errors import ConsoleError
from console.core.text import clean


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy-console",
        description="Pick a reviewed commit from the queue, deploy it to the fleet, watch the key metrics.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "-i", "--inventory", metavar="PATH", help="the inventory of the environment, e.g. hosts/production.yaml"
    )
    where.add_argument(
        "--demo", action="store_true", help="bring up the lab fleet with the demo shop and open the console on it"
    )
    parser.add_argument(
        "--web",
        action="store_true",
        help="serve the console to a browser instead (one console per browser tab; see --bind)",
    )
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        default="127.0.0.1:8000",
        help="where --web listens (default 127.0.0.1:8000); any address but loopback requires the printed token",
    )
    return parser


def _inventory(args: argparse.Namespace) -> Path:
    """The chosen environment's inventory (the demo's once it is up)."""
    if args.demo:
        from console.demo.fleet import start_demo

        return Path(start_demo())
    return Path(args.inventory)


def left_running(deploy_id: str, inventory: Path) -> str:
    """What closing the console mid-deploy says: the deploy goes on, and how to see it again."""
    return (
        f"{deploy_id} goes on: a deploy runs on its own, not in the console. Follow it with "
        f"`invoke status --follow -i {inventory}`, or open the console again (`deploy-console -i {inventory}`)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        inventory = _inventory(args)
        if args.web:
            from console.tui.web import serve

            serve(inventory, args.bind)
            return 0
        from console.service import open_service  # imported late: it may be heavy
        from console.tui.app import ConsoleApp

        service = open_service(inventory)
        ConsoleApp(service).run()
        running = service.running_deploy()  # also one started just before the console closed
        if running:
            print(left_running(running, inventory))
    except ConsoleError as err:
        print(f"deploy-console: {clean(str(err), newlines=True)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
