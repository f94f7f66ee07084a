"""The engine never imports the TUI's toolkit: every engine module imports without `textual`.

Each module is imported in a fresh interpreter (a subprocess), so what another test or
module already imported cannot hide an import of textual.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import console.lab
import console.metrics

ROOT = Path(__file__).resolve().parents[1]

ENGINE = [
    f"console.{name}"
    for name in (
        "inventory", "events", "progress", "deploy", "runner", "fanout", "transport", "remote", "build",
        "checkout", "queue", "ddl", "git", "lock", "history", "eventlog", "notify", "report",
    )
] + [
    f"{package.__name__}.{m.name}"
    for package in (console.metrics, console.lab)
    for m in pkgutil.iter_modules(package.__path__)
]

PROBE = (
    "import importlib, json, sys\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(json.dumps(sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'console.tui')))))\n"
)


def test_the_engine_module_list_is_complete():
    for name in ("console.deploy", "console.metrics.statsd", "console.metrics.watch", "console.lab.lab",
                 "console.lab.faults"):
        assert name in ENGINE


def test_no_engine_module_imports_textual():
    # one fresh interpreter per module, all at once
    procs = {
        module: subprocess.Popen([sys.executable, "-c", PROBE, module], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        for module in [*ENGINE, "console.tui"]
    }
    offenders, broken = {}, {}
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            broken[module] = err.strip().splitlines()[-1:]
            continue
        found = json.loads(out.strip().splitlines()[-1])
        if found:
            offenders[module] = found[:3]
    assert offenders.pop("console.tui", None), "the probe must see textual where it is imported"
    assert not broken, f"engine modules that do not import: {broken}"
    assert not offenders, f"engine modules that import the TUI: {offenders}"
