"""How every task fails: one line on stderr, never a traceback.

The line is made printable (a ref or a commit subject in it cannot drive the terminal),
secrets show as `***` and URLs as their host. A reader that goes away early
(`invoke lab.status | head`) ends the task quietly, as a closed pipe ends `ls`.

`invoke lab.kill --help` shows the task's help: invoke hands `--help` to a positional
argument that is not filled yet (pyinvoke/invoke#982, open in 3.0.3), so a task that
receives it as a value asks invoke for its help instead of running.
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

HELP_FLAGS = ("--help", "-h")


def _show_help(name: str) -> None:
    """Replace this process with `invoke --help TASK` for the task named on the command line."""
    task = next((a for a in sys.argv[1:] if a == name or a.endswith(f".{name}")), None)
    if task is None:
        raise Exit(f"error: for this task's options run: invoke --help {name}", code=1)
    os.execv(sys.executable, [sys.executable, "-m", "invoke", "--help", task])


def clear_errors(body: Callable[..., Any]) -> Callable[..., Any]:
    """A ConsoleError ends the task with its one line on stderr and exit code 1."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(value in HELP_FLAGS for value in (*args[1:], *kwargs.values()) if isinstance(value, str)):
            _show_help(body.__name__.replace("_", "-"))
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
