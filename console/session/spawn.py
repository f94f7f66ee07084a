"""How every detached child starts: a deploy or switch (`detach`), the watcher (`watcher`).

A detached child is `python -m <module> --inventory PATH --job JSON ...` in a session of
its own with stdin closed, so closing the console or killing the terminal that started it,
even with SIGKILL, never reaches it. Its stdout and stderr go to a private file in
`state_dir/runs`, where the parent finds its last words if it dies before reporting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from console.config.inventory import Inventory
from console.state.files import open_private, private_dir


def runs_dir(inventory: Inventory) -> Path:
    """Where detached children leave their output and handoff files (private)."""
    return private_dir(inventory.state_dir / "runs")


def spawn(module: str, inventory: Inventory, job: dict[str, Any], output: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `python -m module` on `inventory` with `job` as a process of its own (see the
    module doc), its output to `output`; returns at once."""
    out = open_private(output)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--inventory", str(inventory.path), "--job", json.dumps(job), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(out)
