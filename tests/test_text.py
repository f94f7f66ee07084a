"""Untrusted text made printable: nothing a commit, host or user writes can drive the terminal."""

from __future__ import annotations

import pytest

from console.core.errors import ConsoleError
from console.core.text import check_line, clean, counted, local_time, printable, redact_urls, safe_url, short


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


def test_zero_width_and_word_joiners_are_shown():
    assert printable("a\u200bb\u2060c\ufeff") == "a⟨U+200B⟩b⟨U+2060⟩c⟨U+FEFF⟩"


def test_secrets_are_censored_everywhere_once_registered():
    from console.core.text import add_secret, censor

    secret = "s3cr3t-token-value-for-test-only"
    assert printable(f"auth {secret}") == f"auth {secret}"[:200]
    add_secret(secret)
    assert printable(f"auth {secret}!") == "auth ***!"
    assert clean(f"curl -H {secret}") == "curl -H ***"
    assert censor(f"{secret}{secret}") == "******"


def test_urls_keep_only_scheme_host_and_port():
    assert safe_url("https://hooks.example.com/T0K3N?x=1") == "https://hooks.example.com/…"
    assert safe_url("https://user:pass@git.example.com:8443/") == "https://git.example.com:8443"
    assert safe_url("http://h:notaport/x") == "http://…"
    assert redact_urls("post to https://h.example/T0K EN failed") == "post to https://h.example/… EN failed"
    assert redact_urls("no url here") == "no url here"
    assert redact_urls(redact_urls("see http://a.b/c")) == "see http://a.b/…"


def test_clean_is_printable_uncapped_with_urls_redacted():
    assert clean("x" * 500) == "x" * 500
    assert clean("a\x1b[2Jb https://h/secret") == "a\\x1b[2Jb https://h/…"
    assert clean("line 1\nline 2\x07", newlines=True) == "line 1\nline 2\\x07"


@pytest.mark.parametrize("bad", ["two\nlines", "bell\x07", "rtl\u202e", "x" * 201])
def test_check_line_refuses_what_could_forge_a_log_line(bad):
    with pytest.raises(ConsoleError) as caught:
        check_line(bad, "--reason")
    message = str(caught.value)
    assert message.startswith("--reason: expected one line") and "\n" not in message and "\x07" not in message


def test_check_line_passes_plain_text():
    assert check_line("hotfix for #12 (Alice)", "--reason") == "hotfix for #12 (Alice)"


def test_a_time_no_clock_can_show():
    assert local_time(1e300) == "an unknown time"
    assert local_time(float("nan")) == "an unknown time"
    assert local_time(0, date=False)


def test_a_count_says_its_noun_in_the_plural_only_when_it_is_not_one():
    assert [counted(n, "commit") for n in (0, 1, 2)] == ["0 commits", "1 commit", "2 commits"]
