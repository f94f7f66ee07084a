"""The console's colours, declared once: the defaults of `Palette`.

`THEME` ("deploy-console", registered and chosen by the app) is Textual's dark theme, the
colours the console always had, plus every `Palette` colour as a theme variable:
`$console-ok`, `$console-failed`, ... by meaning, and `$host-waiting` ... `$host-failed`,
one per host state. `console.tcss` uses the variables; code that builds Rich `Text`
calls `palette(self)`, which reads the same variables from the app's current theme. So a
theme that sets `host-failed` recolours the grid, the legend and the host detail at once,
and a theme that does not gets these defaults (`ConsoleApp.get_theme_variable_defaults`).
`TEXTUAL_VARIABLES` are the few of Textual's own variables the theme sets (the highlighted
table row, for contrast).

The metric plots are drawn by plotext, which takes the same colours as RGB triples
(`rgb(colour)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from textual.color import Color
from textual.dom import DOMNode
from textual.theme import Theme


def _host_defaults() -> Mapping[str, str]:
    return MappingProxyType(
        {
            "waiting": "#6c6c6c",
            "assets": "#5f87ff",
            "staged": "#00afd7",
            "switching": "#d7af00",
            "restarting": "#d787ff",
            "verified": "#5fd75f",
            "unchanged": "#8787af",
            "failed": "#ff3f3f",
        }
    )


@dataclass(frozen=True)
class Palette:
    """The console's colours by meaning, as Rich colour strings."""

    ok: str = "#5fd75f"
    """Reviewed, the lock free, a result, verdict or phase that is ok."""
    failed: str = "#ff3f3f"
    """Failed, refused, not reviewed, degraded; an error."""
    caution: str = "#d7af00"
    """A partial result, a warning, a phase done with failed hosts."""
    running: str = "#5f87ff"
    """Running now."""
    commit: str = "#00afd7"
    """A commit's short SHA."""
    attention: str = "#ff8700"
    """What a person should notice: the lock held, an override, DDL, an aborted deploy."""
    blocked: str = "#a8a8a8"
    """The subject of a commit that cannot go out as it is."""
    pending: str = "#808080"
    """Not started yet; no data."""
    track: str = "#3a3a3a"
    """The empty part of a progress bar."""
    output: str = "#b2b2b2"
    """A host's output lines."""
    cursor: str = "#ffffff"
    """The fleet grid's cursor, drawn on the colour of its host's state."""
    line: str = "#00afd7"
    """A key metric's line on its graph."""
    switch: str = "#d787ff"
    """A switch back to an earlier release (its line on the graphs)."""
    hosts: Mapping[str, str] = field(default_factory=_host_defaults)
    """Host state -> its colour (one for each of `HOST_STATES`)."""

    def marker(self, kind: str) -> str:
        """The colour of a deploy marker on the graphs, by its kind (`console.service.Marker`)."""
        return {"deploy": self.attention, "failed": self.failed, "switch": self.switch}.get(kind, self.pending)

    def host(self, state: str) -> str:
        """The colour of a host state (`pending` for a state this palette does not know)."""
        return self.hosts.get(state, self.pending)

    def variables(self) -> dict[str, str]:
        """These colours as theme variables: `console-<name>` and `host-<state>`."""
        out = {f"console-{name}": getattr(self, name) for name in _COLOR_NAMES}
        out.update({f"host-{state}": color for state, color in self.hosts.items()})
        return out

    @classmethod
    def of(cls, variables: Mapping[str, str]) -> Palette:
        """The palette a theme's variables declare (a missing variable keeps its default)."""
        default = DEFAULT_PALETTE
        hosts = MappingProxyType({s: variables.get(f"host-{s}", c) for s, c in default.hosts.items()})
        colors = {name: variables.get(f"console-{name}", getattr(default, name)) for name in _COLOR_NAMES}
        return cls(hosts=hosts, **colors)


_COLOR_NAMES = tuple(f.name for f in fields(Palette) if f.name != "hosts")
DEFAULT_PALETTE = Palette()

#: Textual's own theme variables the console sets: the highlighted row of a table, white on a
#: blue dark enough for 7:1 (Textual's light text on $primary is 3.8:1, under WCAG's 4.5:1).
TEXTUAL_VARIABLES = MappingProxyType({"block-cursor-background": "#0a5a9c", "block-cursor-foreground": "#ffffff"})

#: The deploy console's theme: the values of Textual's "textual-dark", plus the palette.
THEME = Theme(
    name="deploy-console",
    primary="#0178D4",
    secondary="#004578",
    accent="#ffa62b",
    warning="#ffa62b",
    error="#ba3c5b",
    success="#4EBF71",
    foreground="#e0e0e0",
    dark=True,
    variables={**DEFAULT_PALETTE.variables(), **TEXTUAL_VARIABLES},
)

_cache: tuple[dict[str, str], Palette] | None = None


def palette(node: DOMNode) -> Palette:
    """The console's colours in the current theme of `node`'s app (call on the UI thread)."""
    global _cache
    variables = node.app.theme_variables
    if _cache is None or _cache[0] is not variables:
        _cache = (variables, Palette.of(variables))
    return _cache[1]


def rgb(color: str) -> tuple[int, int, int]:
    """A palette colour as plotext takes it: `(r, g, b)`."""
    return Color.parse(color).rgb
