"""The one error type a user sees.

Every failure a person can cause or fix (a bad inventory, an unknown ref, a held lock,
an unreachable host) is raised as a `ConsoleError` whose message is one line that names
the file, key or host and says what was expected. The CLI and the TUI print that line;
anything else escaping is a bug, not a message.
"""


class ConsoleError(Exception):
    """A failure explained in one line, for a person to read."""
