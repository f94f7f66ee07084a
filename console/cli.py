"""`deploy-console`: open the console on an inventory, or on the demo fleet.

deploy-console -i hosts/production.yaml
deploy-console --demo
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from console.core.errors import ConsoleError


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
    return parser


def _service(args: argparse.Namespace):
    """The engine's service for the chosen environment (imported late: it may be heavy)."""
    from console.service import open_service

    if args.demo:
        from console.demo.fleet import start_demo

        return open_service(start_demo())
    return open_service(args.inventory)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        service = _service(args)
        from console.tui.app import ConsoleApp

        ConsoleApp(service).run()
    except ConsoleError as err:
        print(f"deploy-console: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
