"""Untrusted text made printable: nothing a commit, host or user writes can drive the terminal."""

from __future__ import annotations

import pytest

from console.core.text import printable, short


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("fix checkout", "fix checkout"),
        ("\x1b]0;owned\x07title", "\\x1b]0;owned\\x07title"),
        ("\x1b[2J\x1b[8mhidden", "\\x1b[2J\\x1b[8mhidden"),
        ("ok\rFAKE", "ok\\rFAKE"),
        ("a\nb\tc", "a\\nb\\tc"),
        ("\x9b31m", "\\x9b31m"),
        ("\x7f", "\\x7f"),
        ("admin\u202egnp.exe", "admin⟨U+202E⟩gnp.exe"),
        ("\u2066x\u2069", "⟨U+2066⟩x⟨U+2069⟩"),
        ("Eve [/] [bold]", "Eve [/] [bold]"),  # markup is the console's to escape, not an escape
        ("café ✓", "café ✓"),
    ],
)
def test_control_and_bidi_characters_become_visible_escapes(raw, shown):
    assert printable(raw) == shown


def test_newlines_are_kept_only_when_asked():
    assert printable("line 1\nline 2\x1b", newlines=True) == "line 1\nline 2\\x1b"


def test_long_text_is_capped():
    assert printable("x" * 500, limit=10) == "x" * 10 + "…"
    assert len(printable("y" * 5000, limit=None)) == 5000


def test_short_commit_ids():
    assert short("0123456789abcdef") == "0123456"
    assert short(None) == ""
    assert short(None, "nothing") == "nothing"
