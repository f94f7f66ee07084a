"""`invoke screenshots`: the SVGs in screenshots/, regenerated from the console's snapshot tests.

The snapshot tests drive the real console with a deterministic fake engine (fixed clock,
scripted events), so the pictures change only when the screens do.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "tests" / "__snapshots__" / "test_tui_snapshots"
#: snapshot test -> screenshot name
SCREENS = {
    "test_queue": "queue",
    "test_confirm_refused": "deploy-refused",
    "test_fleet_in_progress": "deploy-in-progress",
    "test_metrics": "after-deploy-metrics",
    "test_failed_host_detail": "failed-host-detail",
    "test_history": "history",
    "test_history_deploy": "deploy-detail",
    "test_live_log": "live-log",
    "test_switch_confirm": "switch-confirm",
    "test_help": "help",
}


@task(help={"size": "terminal size of the pictures: 120x40 or 200x60 (default 120x40)"})
def screenshots(c, size="120x40"):
    """Regenerate screenshots/*.svg: queue, deploy in progress, metrics with the deploy marker,
    a failed host's detail, history, a past deploy's detail, the live log, a switch back, the help."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/test_tui_snapshots.py", "--snapshot-update"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise Exit("error: the snapshot tests failed:\n" + proc.stdout[-2000:], code=1)
    out = ROOT / "screenshots"
    out.mkdir(exist_ok=True)
    for test, name in SCREENS.items():
        source = SNAPSHOTS / f"{test}[{size}].svg"
        if not source.exists():
            raise Exit(f"error: no snapshot {source.name}: expected sizes 120x40 or 200x60", code=1)
        shutil.copyfile(source, out / f"{name}.svg")
        print(f"screenshots/{name}.svg")
