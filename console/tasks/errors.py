"""How every task fails: one line on stderr, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from invoke.exceptions import Exit

from console.core.errors import ConsoleError


def clear_errors(body: Callable[..., Any]) -> Callable[..., Any]:
    """A ConsoleError ends the task with its one line on stderr and exit code 1."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except ConsoleError as exc:
            raise Exit(f"error: {exc}", code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper
