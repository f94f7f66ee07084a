"""How text is shown to people and recorded: short commit ids, local times, untrusted text made safe.

Commit subjects and authors, refs, lock reasons, user names and remote command output come
from people and hosts we do not control. `printable` is the one function every place that
shows such text calls: terminal control sequences, C0/C1 control characters and bidi
overrides become visible escapes, so a commit subject can never retitle, clear or hide
part of an operator's terminal, and a long value is capped.

Secrets: the values of the inventory's `secrets` are registered here when a run resolves
them (`add_secret`), and from then on `printable` and `clean` show each as `***`. `clean`
is what may be recorded (events, the history, errors): `printable` without the cap, and
every URL cut to its scheme, host and port (`safe_url`), since URLs carry tokens.
`censor` also takes what only looks like a secret out of host output before it is logged
or shown (`password=...`, an Authorization header, a private key's lines).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from console.core.errors import ConsoleError

#: C0 and C1 control characters, and the invisible characters that reorder or hide text
#: (bidi embeddings, overrides, isolates, marks, zero-width characters, line and paragraph
#: separators, the BOM): the characters `printable` turns into visible escapes.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\x1b"}
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()/]+[^\s'\"<>()]*")

#: What a secret's value is shown as.
CENSORED = "***"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return _NAMED.get(ch, f"\\x{code:02x}")
    return f"⟨U+{code:04X}⟩"


def printable(text: object, limit: int | None = 200, *, newlines: bool = False) -> str:
    """`text` as it may be written to a terminal: control characters as `\\xNN` (or `\\n`,
    `\\t`, `\\r`), invisible bidi and zero-width characters as `⟨U+202E⟩`, secrets as `***`,
    and at most `limit` characters (then `…`). `newlines=True` keeps line breaks (multi-line output)."""
    value = hide_secrets(str(text))
    if limit is not None and len(value) > limit:
        value = value[:limit] + "…"
    return (_UNSAFE_BUT_NEWLINE if newlines else _UNSAFE).sub(_escape, value)


def is_printable(text: str) -> bool:
    """Whether `text` holds no control, bidi or zero-width character (it shows as it is)."""
    return _UNSAFE.search(text) is None


def check_line(text: str, what: str, *, limit: int = 200) -> str:
    """`text` if it is one line of at most `limit` printable characters; otherwise a
    ConsoleError naming `what` (a flag, a variable): what people give that gets recorded
    (a lock or override reason, a display name) can never forge a line of a log."""
    if not is_printable(text) or len(text) > limit:
        raise ConsoleError(
            f"{what}: expected one line of at most {limit} characters without control characters, "
            f"got '{printable(text, 60)}'"
        )
    return text


def safe_url(url: str) -> str:
    """`https://hooks.example.com/…`: scheme, host and port only (paths, queries and user
    names carry tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number, brackets that do not close
        return url.partition("://")[0] + "://…"
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def redact_urls(text: str) -> str:
    """Every URL in `text` as `safe_url` shows it (punctuation after it stays)."""

    def redacted(match: re.Match[str]) -> str:
        url = match.group().rstrip(".,;:!?")
        return safe_url(url) + match.group()[len(url) :]

    return _URL.sub(redacted, text) if "://" in text else text


def is_plain(text: str) -> bool:
    """Whether `clean` would leave `text` as it is: no control character, no URL, and no
    secret registered (the common case, checked cheaply)."""
    return not _secrets and "://" not in text and _UNSAFE.search(text) is None


def clean(text: str, *, newlines: bool = False) -> str:
    """`text` as it may be recorded or shown in a message: printable (uncapped), secrets
    censored, URLs redacted."""
    if is_plain(text):
        return text
    return redact_urls(printable(text, None, newlines=newlines))


def add_secret(value: str) -> None:
    """From now on, `value` is shown and recorded as `***` by this process."""
    with _secrets_lock:
        _secrets.add(value)


def hide_secrets(text: str) -> str:
    """`text` with every registered secret replaced by `***` (longest first)."""
    if not _secrets:
        return text
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, CENSORED)
    return text


#: What a secret looks like in output: `password=...`, `token: ...`, an Authorization
#: header, a URL's user:password, a private key's lines (Deployinator PR #117).
_SECRET_PATTERNS = (
    re.compile(
        r"(?i)\b((?:pass(?:word|wd)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)\w*[\"']?\s*[:=]\s*)\S+"
    ),
    re.compile(r"(?i)\b(authorization:\s*(?:\w+\s+)?|bearer\s+)\S+"),
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(@)"),
)
_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)


def censor(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret (the registered ones, and `secrets`: exact values,
    such as webhook URLs) and every value that looks like one replaced by `***`: what
    output must pass before it is logged or shown."""
    text = hide_secrets(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, CENSORED)
    text = _KEY_BLOCK.sub(f"-----{CENSORED} PRIVATE KEY-----", text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + CENSORED + (m.group(2) if m.re.groups > 1 else ""), text)
    return text


def short(revision: str | None, empty: str = "") -> str:
    """A commit id as people read it: its first 7 hex digits, `empty` when there is none."""
    return revision[:7] if revision else empty


def counted(count: int, noun: str) -> str:
    """`1 commit`, `2 commits`: a count with its noun (nouns whose plural is an s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def local_time(ts: float, *, date: bool = True) -> str:
    """`YYYY-MM-DD HH:MM:SS` in local time, the one way times are shown to people
    (`HH:MM:SS` with `date=False`, where the day goes without saying). A time no clock
    can show (a hand-edited lock's `since: 1e300`) is "an unknown time"."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(ts))
    except (OverflowError, ValueError, OSError, TypeError):
        return "an unknown time"
