"""The layers hold: import-linter's contracts (pyproject.toml) pass, a violation fails them,
and every module outside `console.tui` imports in a fresh interpreter without `textual`.

The contracts are the declaration; these tests prove they are checked and that they can fail.
"""

from __future__ import annotations

import json
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import console

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

#: Every module that must run headless: all of console/ but the console itself and its entry point.
HEADLESS = sorted(
    m.name
    for m in pkgutil.walk_packages(console.__path__, "console.")
    if not m.name.startswith(("console.tui", "console.cli", "console.__main__"))
)

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


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    p = lint_imports(ROOT)
    assert p.returncode == 0, p.stdout[-2000:]
    assert "0 broken" in p.stdout


def test_an_engine_module_importing_textual_breaks_a_contract(tmp_path):
    shutil.copytree(ROOT / "console", tmp_path / "console", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    fanout = tmp_path / "console" / "fleet" / "fanout.py"
    fanout.write_text(fanout.read_text() + "\nimport textual\n")
    p = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert p.returncode == 1, p.stdout[-2000:]
    assert "console.fleet.fanout -> textual" in p.stdout


def test_the_headless_list_covers_every_layer():
    for name in ("console.pipeline.run", "console.fleet.transport", "console.service", "console.lab.lab"):
        assert name in HEADLESS
    assert not [m for m in HEADLESS if m.startswith("console.tui")]


def test_no_headless_module_imports_textual():
    # A fresh interpreter: nothing imported by pytest or other tests can hide an import.
    p = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([*HEADLESS, "console.tui.app"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr.strip().splitlines()[-1:]
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    offenders = [m for m in HEADLESS if seen[m]]
    assert not offenders, f"{offenders[0]} imports the TUI: {seen[offenders[0]][:3]}"
    assert "textual" in seen["console.tui.app"], "the probe must see textual where it is imported"


def test_every_runtime_import_is_a_declared_dependency():
    """What console/ and tasks.py import from outside the standard library is in
    pyproject's `dependencies` (not only in the test extras), so a plain `pip install .`
    runs every task (.ci/install-check proves it in a clean virtualenv)."""
    import ast
    import importlib.metadata
    import re
    import tomllib

    declared = {
        re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-")
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    owners = importlib.metadata.packages_distributions()
    sources = [p for p in (ROOT / "console").rglob("*.py") if "demo/shop" not in p.as_posix()]  # the shop: stdlib only
    missing: dict[str, str] = {}
    for path in [*sources, ROOT / "tasks.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("console", "__future__"):
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                if not dists & declared:
                    missing[top] = str(path.relative_to(ROOT))
    assert missing == {}, "imported at run time but not in [project] dependencies"
