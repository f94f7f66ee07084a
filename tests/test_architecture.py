"""The engine never imports the TUI's toolkit: every engine module imports without `textual`.

The modules are imported in a fresh interpreter (a subprocess), so nothing pytest or another
test imported can hide an import of textual; the first module that loads it is named.
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

# Imports the modules given as JSON one after another and prints, for each, the TUI modules
# loaded so far: the first module with a non-empty list is the one that pulled textual in.
PROBE = """
import importlib, json, sys
seen = {}
for module in json.loads(sys.argv[1]):
    importlib.import_module(module)
    seen[module] = sorted(m for m in sys.modules if m == "textual" or m.startswith(("textual.", "console.tui")))
print(json.dumps(seen))
"""


def probe(modules: list[str]) -> dict[str, list[str]]:
    p = subprocess.run([sys.executable, "-c", PROBE, json.dumps(modules)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr.strip().splitlines()[-1:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_engine_module_list_is_complete():
    for name in ("console.deploy", "console.metrics.statsd", "console.metrics.watch", "console.lab.lab",
                 "console.lab.faults"):
        assert name in ENGINE


def test_no_engine_module_imports_textual():
    # A fresh interpreter: nothing imported by pytest or other tests can hide an import.
    seen = probe([*ENGINE, "console.tui.app"])
    offenders = [m for m in ENGINE if seen[m]]
    assert not offenders, f"{offenders[0]} imports the TUI: {seen[offenders[0]][:3]}"
    assert "textual" in seen["console.tui.app"], "the probe must see textual where it is imported"
