"""Every key of the console, with what it does (`?` or F1).

The list is built from the bindings themselves (each `Binding`'s description and tooltip),
screen by screen, so it cannot drift from what the keys really do; the few things that are
not key bindings (enter on a table row, a click) are listed beside them.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.binding import BindingType as AnyBinding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Static

from console.tui.widgets.console_footer import ConsoleFooter

#: A section of the help: its title, the classes whose bindings it lists, and extra rows.
Section = tuple[str, tuple[type[DOMNode], ...], tuple[tuple[str, str], ...]]


def sections() -> list[Section]:
    """The console's screens and widgets, in the order a person meets them."""
    from console.tui.app import ConsoleApp
    from console.tui.screens.confirm_action import ConfirmAction
    from console.tui.screens.confirm_deploy import ConfirmDeploy
    from console.tui.screens.console import ConsoleScreen
    from console.tui.screens.deploy_detail import DeployDetailScreen
    from console.tui.screens.host_detail import HostDetailScreen
    from console.tui.screens.live_log import LiveLogScreen
    from console.tui.screens.lock import LockScreen
    from console.tui.widgets.fleet_grid import FleetGrid
    from console.tui.widgets.history_table import HistoryTable
    from console.tui.widgets.queue_table import QueueTable

    return [
        ("Everywhere", (ConsoleApp,), (("ctrl+p", "the command palette: every console action by name"),)),
        ("Main screen", (ConsoleScreen,), ()),
        ("Queue [1]", (QueueTable,), (("↑ ↓", "choose a commit: a deploy ships it and every older one"),)),
        ("Fleet [2]", (FleetGrid,), (("click", "a host's cell opens its detail"),)),
        ("History [4]", (HistoryTable,), (("s", "switch every host to the highlighted deploy's release"),)),
        ("Deploy detail", (DeployDetailScreen,), ()),
        ("Host detail", (HostDetailScreen,), ()),
        ("Live log", (LiveLogScreen,), (("↑ ↓ pgup pgdn", "scroll; home and end go to the start and the end"),)),
        ("Dialogs", (ConfirmDeploy, LockScreen, ConfirmAction), (("enter", "press the focused button"),)),
    ]


def _bindings(cls: type[DOMNode]) -> Iterable[Binding]:
    """The bindings `cls` declares (a screen: with those of its console base classes)."""
    seen: list[AnyBinding] = []
    for base in reversed(cls.__mro__):
        if base.__module__.startswith("console.") and "BINDINGS" in base.__dict__:
            seen.extend(base.__dict__["BINDINGS"])
    for binding in seen:
        if isinstance(binding, Binding):
            yield binding
        else:
            key, action, description = (*binding, "")[:3]
            yield Binding(key, action, description)


class HelpScreen(ModalScreen[None]):
    """Every key, screen by screen (escape closes)."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = "keys"
            yield Static(self.table(), id="keys")
        yield ConsoleFooter()

    def table(self) -> Table:
        table = Table(box=None, show_header=False, expand=True, padding=(0, 1))
        table.add_column("key", style="bold", no_wrap=True, width=16)
        table.add_column("name", no_wrap=True, width=24)
        table.add_column("what it does", ratio=1)
        for title, classes, extra in sections():
            table.add_row(Text(title, style="bold underline"), "", "")
            rows: dict[str, tuple[list[str], str, str]] = {}
            for cls in classes:
                for binding in _bindings(cls):
                    if not binding.description:
                        continue
                    keys = [self.app.get_key_display(Binding(k, binding.action)) for k in binding.key.split(",")]
                    known = rows.setdefault(binding.action, ([], binding.description, binding.tooltip))
                    known[0].extend(k for k in keys if k not in known[0])
            for keys, name, tooltip in rows.values():
                table.add_row(" ".join(keys), name, tooltip)
            for key, what in extra:
                table.add_row(key, "", what)
            table.add_row("", "", "")
        return table

    def action_close(self) -> None:
        self.dismiss(None)
