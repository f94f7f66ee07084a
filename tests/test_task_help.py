"""`invoke TASK --help` prints the task's help for every task, also one with positional arguments
(invoke itself would run it with the value "--help": pyinvoke/invoke#982)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Tasks with one positional argument: the ones invoke's parser gets wrong. (`lab.slow` has
#: two: `invoke lab.slow --help` stops in invoke with "did not receive required positional
#: arguments: 'rate'", one line, before any task runs; with a host given, see below.)
POSITIONAL = ["lab.kill", "lab.cut", "lab.fill", "lab.rekey", "lab.heal"]


def invoke(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("task", POSITIONAL)
def test_help_after_a_task_with_positional_arguments_shows_its_help(task):
    p = invoke(task, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"Usage: inv[oke] [--core-opts] {task} ")
    assert "--host=STRING" in p.stdout


def test_help_given_for_a_later_positional_argument_shows_the_help_too():
    p = invoke("lab.slow", "web001", "-h")
    assert p.returncode == 0, p.stderr
    assert "Shape the host's link" in p.stdout
