"""How every task fails: one line on stderr, never a traceback.

The line is made printable (a ref or a commit subject in it cannot drive the terminal),
secrets show as `***` and URLs as their host. A reader that goes away early
(`invoke lab.status | head`) ends the task quietly, as a closed pipe ends `ls`.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from invoke.exceptions import Exit

from console.core.errors import ConsoleError
from console.core.text import clean


def clear_errors(body: Callable[..., Any]) -> Callable[..., Any]:
    """A ConsoleError ends the task with its one line on stderr and exit code 1."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = body(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not at exit as "Exception ignored"
            return result
        except ConsoleError as exc:
            raise Exit(f"error: {clean(str(exc), newlines=True)}", code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None
        except BrokenPipeError:
            # Nobody reads stdout any more: point it at /dev/null so the flush at exit is quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=0) from None

    return wrapper
