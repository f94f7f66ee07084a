"""How text is shown to people: short commit ids, local times, and untrusted text made safe.

Commit subjects and authors, refs, lock reasons, user names and remote command output come
from people and hosts we do not control. `printable` is the one function every place that
shows such text calls: terminal control sequences, C0/C1 control characters and bidi
overrides become visible escapes, so a commit subject can never retitle, clear or hide
part of an operator's terminal, and a long value is capped. `censor` takes secrets out of
host output before it is logged or shown.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

#: Invisible characters that reorder or hide text (bidi embeddings, overrides, isolates,
#: marks, zero-width characters, line/paragraph separators, the BOM): shown as ⟨U+XXXX⟩.
_INVISIBLE = frozenset(
    [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x061C, 0x2028, 0x2029, 0xFEFF]
)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\x1b"}


def printable(text: object, limit: int | None = 200, *, newlines: bool = False) -> str:
    """`text` as it may be written to a terminal: control characters as `\\xNN` (or `\\n`,
    `\\t`, `\\r`), invisible bidi and zero-width characters as `⟨U+202E⟩`, and at most
    `limit` characters (then `…`). `newlines=True` keeps line breaks (multi-line output)."""
    value = str(text)
    if limit is not None and len(value) > limit:
        value = value[:limit] + "…"
    out: list[str] = []
    for ch in value:
        code = ord(ch)
        if ch == "\n" and newlines:
            out.append(ch)
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(_NAMED.get(ch, f"\\x{code:02x}"))
        elif code in _INVISIBLE:
            out.append(f"⟨U+{code:04X}⟩")
        else:
            out.append(ch)
    return "".join(out)


def short(revision: str | None, empty: str = "") -> str:
    """A commit id as people read it: its first 7 hex digits, `empty` when there is none."""
    return revision[:7] if revision else empty


def local_time(ts: float, *, date: bool = True) -> str:
    """`YYYY-MM-DD HH:MM:SS` in local time, the one way times are shown to people
    (`HH:MM:SS` with `date=False`, where the day goes without saying)."""
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(ts))


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
CENSORED = "***"


def censor(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret (`secrets`: exact values, such as webhook URLs) and
    every value that looks like one replaced by `***`: what output must pass before it is
    logged or shown."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, CENSORED)
    text = _KEY_BLOCK.sub(f"-----{CENSORED} PRIVATE KEY-----", text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + CENSORED + (m.group(2) if m.re.groups > 1 else ""), text)
    return text
