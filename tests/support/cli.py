"""The repository's invoke tasks run in the test's own process: fast, and a traceback is a
test failure rather than text on stderr. `run_invoke(argv, capsys)` gives (exit code,
stdout, stderr) as a shell would see them from `invoke ARGV`."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from typing import Any

from invoke import Program

ROOT = Path(__file__).resolve().parents[2]


def _tasks() -> Any:
    spec = importlib.util.spec_from_file_location("repo_tasks", ROOT / "tasks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TASKS = _tasks()


def run_invoke(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    """invoke, in this process: (exit code, stdout, stderr); anything escaping is a traceback."""
    handler = signal.getsignal(signal.SIGINT)  # a foreground deploy sets its own Ctrl-C handler
    code = 0
    try:
        Program(namespace=TASKS.ns, name="invoke", binary="invoke").run(["invoke", *argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        signal.signal(signal.SIGINT, handler)
    out = capsys.readouterr()
    return code, out.out, out.err
