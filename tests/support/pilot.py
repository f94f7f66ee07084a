"""What the Pilot tests of the console share: running an async test, waiting, reading a widget."""

from __future__ import annotations

import asyncio
import functools


def pilot_test(fn):
    """Run an async test on a fresh event loop (the project has no async pytest plugin); its
    arguments (fixtures, parameters) pass through."""

    @functools.wraps(fn)
    def run(*args, **kwargs) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


async def until(pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)


def rendered(widget) -> str:
    """What a widget shows, as plain text."""
    return str(widget.render())


def plan_ready(app) -> bool:
    """The deploy confirmation is open and shows its plan (it loads the preview itself)."""
    from console.tui.screens.confirm_deploy import ConfirmDeploy

    return isinstance(app.screen, ConfirmDeploy) and bool(app.screen.query("#confirm"))


async def plan_shown(pilot) -> None:
    await until(pilot, lambda: plan_ready(pilot.app))
    await pilot.pause(0.05)  # the focus moves to the button or the reason
