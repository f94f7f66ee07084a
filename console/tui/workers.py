"""Every call to the engine runs in a `service_worker`; a failure reaches the person as one line.

The service blocks (git, SQLite, ssh, Prometheus), so each call runs in a thread worker,
and from that thread only `call_from_thread` touches the UI. Textual posts
`Worker.StateChanged` only to the node that ran the worker (the message does not bubble),
so, as in harlequin, these workers run on the app with `exit_on_error=False`, and the
app's one `Worker.StateChanged` handler (`ConsoleApp.on_worker_state_changed`) shows any
failure as `failure_line(error)`, whichever screen or pane made the call. A method that
calls the service therefore never catches an exception only to show it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from textual.dom import DOMNode
from textual.worker import Worker

from console.core.errors import ConsoleError
from console.core.text import printable

P = ParamSpec("P")
Node = TypeVar("Node", bound=DOMNode)


def service_worker(
    group: str,
) -> Callable[[Callable[Concatenate[Node, P], None]], Callable[Concatenate[Node, P], Worker[None]]]:
    """`@service_worker("queue")`: calling the method starts it in a thread worker of the app,
    exclusive in `group` (a newer call cancels an older one of the same group; groups are
    app-wide, so name one after what it asks the service)."""

    def decorator(method: Callable[Concatenate[Node, P], None]) -> Callable[Concatenate[Node, P], Worker[None]]:
        @functools.wraps(method)
        def start(node: Node, *args: P.args, **kwargs: P.kwargs) -> Worker[None]:
            return node.app.run_worker(
                functools.partial(method, node, *args, **kwargs),
                name=method.__qualname__,
                group=group,
                exclusive=True,
                thread=True,
                exit_on_error=False,
            )

        return start

    return decorator


def failure_line(error: BaseException) -> str:
    """One readable, printable line for any error (a ConsoleError already says what happened)."""
    lines = str(error).splitlines()
    if not lines:
        return type(error).__name__
    line = lines[0] if isinstance(error, ConsoleError) else f"{type(error).__name__}: {lines[0]}"
    return printable(line, limit=None)
