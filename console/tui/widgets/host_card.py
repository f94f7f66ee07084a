"""One host in one deploy: state, per-phase state and timings, bytes, output, the error."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from console.core.events import LOCAL_PHASES, PHASES
from console.core.progress import HostView
from console.core.text import printable
from console.tui.format import duration, human_bytes
from console.tui.theme import palette


def phase_state(host: HostView, phase: str) -> str:
    """done, failed, working or pending: where `host` stands in `phase`."""
    if host.state == "failed" and host.phase == phase:
        return "failed"
    if phase in host.seconds:
        return "done"
    if host.phase == phase:
        return "working"
    return "pending"


class HostCard(Static):
    """Renders a `HostView` for the host detail screen."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", name=name, id=id, classes=classes)

    def show(self, host: HostView | None, phases: Sequence[str] = PHASES, deploy_id: str = "") -> None:
        if host is None:
            self.update(Text("This host takes no part in the deploy shown.", style="dim"))
            return
        colors = palette(self)
        text = Text()
        text.append(f"{host.name}  ", style="bold")
        text.append(f" {host.state} ", style=f"bold reverse {colors.host(host.state)}")
        if deploy_id:
            text.append(f"  in {deploy_id}", style="dim")
        text.append("\n\n")
        styles = {
            "done": colors.ok,
            "failed": f"bold {colors.failed}",
            "working": colors.running,
            "pending": colors.pending,
        }
        for phase in phases:
            if phase in LOCAL_PHASES:
                continue
            state = phase_state(host, phase)
            text.append(f"  {phase:<12} ")
            text.append(f"{state:<8}", style=styles[state])
            if phase in host.seconds:
                text.append(f" {duration(host.seconds[phase]):>8}", style="dim")
            text.append("\n")
        text.append(f"\n  sent {human_bytes(host.bytes)}", style="")
        total = sum(host.seconds.values())
        if total:
            text.append(f"   busy {duration(total)}", style="dim")
        if host.message:
            text.append(f"\n  last: {printable(host.message)}", style="dim")
        if host.reason:
            text.append("\n\n  error  ", style=f"bold {colors.failed}")
            text.append(f"{host.phase}: {printable(host.reason, 400)}", style=colors.failed)
            if host.exit_code is not None:
                text.append(f"  (exit {host.exit_code})", style="dim")
        if host.output:
            text.append("\n\n  last lines of output\n", style="bold")
            for line in host.output.splitlines()[-12:]:
                text.append(f"  │ {printable(line)}\n", style=colors.output)
        self.update(text)
