"""Command and URL templates: plain `{placeholder}`s only, filled by substitution.

The inventory's `restart` and `health` are templates over a host's fields, its vars and
the inventory's secrets. `str.format` would also evaluate `{name.__class__}`, `{port:d}`
and `{name:>999999999}`; here a template may hold nothing but plain `{name}`s (and `{{`
`}}` for braces), checked when the inventory loads, and filling one is a substitution.

A command names values shell-quoted; a secret goes in as the shell variable that holds
it, `"$DEPLOY_SECRET_<name>"` (also exported, for a program that reads its environment),
and its value reaches the host on the command's stdin, read first, never in ssh's argv,
the remote shell's or a log.
"""

from __future__ import annotations

import functools
import re
import shlex
import string
from collections.abc import Collection, Mapping

#: What a placeholder may be called: a var's, a host field's or a secret's name.
PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: The longest command a template may render to for any host.
MAX_COMMAND = 4096
#: The shell variable a secret's value is read into on the host.
SECRET_VAR = "DEPLOY_SECRET_"
#: How a secret shows where a command is printed (--dry-run).
SHOWN_SECRET = "***"


@functools.cache
def parse(template: str) -> tuple[tuple[str, str | None], ...]:
    """The template as (literal text, placeholder name or None) pieces; ValueError says
    what is not a plain placeholder."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template: {exc}") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (not PLACEHOLDER.match(name) or spec or conversion):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(
                f"placeholder {shown} is not a plain {{name}}: expected letters, digits and _ only, "
                "with no attribute, index, conversion or format spec"
            )
        pieces.append((literal, name))
    return tuple(pieces)


def placeholders(template: str) -> list[str]:
    """The names a template uses, each once, in order (ValueError as `parse`)."""
    return list(dict.fromkeys(name for _, name in parse(template) if name is not None))


def fill(template: str, values: Mapping[str, str]) -> str:
    """Each placeholder replaced by its value, as given (a URL's values; KeyError if one is missing)."""
    return "".join(literal + (values[name] if name is not None else "") for literal, name in parse(template))


def shell_command(template: str, fields: Mapping[str, object], secrets: Collection[str]) -> tuple[str, list[str]]:
    """The command a template stands for on a host, and the secrets it reads from stdin
    (in that order, one line each): each field's value shell-quoted, each secret as the
    variable that holds it (see the module doc)."""
    used = [name for name in placeholders(template) if name in secrets]
    values = {name: shlex.quote(str(value)) for name, value in fields.items()}
    values.update({name: f'"${SECRET_VAR}{name}"' for name in used})
    body = fill(template, values)
    if not used:
        return body, []
    reads = " && ".join(f"IFS= read -r {SECRET_VAR}{name} && export {SECRET_VAR}{name}" for name in used)
    return f"{reads} && {{\n{body}\n}}", used


def shown_command(template: str, fields: Mapping[str, object], secrets: Collection[str]) -> str:
    """The command as --dry-run prints it: values shell-quoted, each secret as `***`."""
    values = {name: shlex.quote(str(value)) for name, value in fields.items()}
    values.update(dict.fromkeys(secrets, SHOWN_SECRET))
    return fill(template, values)
