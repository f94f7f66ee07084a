"""The deploy confirmation: the plan (commits, hosts, chunks, strategy), what is refused and
why, and an override reason when the range is refused."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console.service import Preview
from console.tui.theme import palette
from console.tui.widgets.queue_table import blocked_reason


@dataclass(frozen=True)
class DeployChoice:
    """The person confirmed; `override` is their reason when the range was refused."""

    sha: str
    override: str | None = None


class ConfirmDeploy(ModalScreen[DeployChoice | None]):
    """Shows a `Preview` and asks to confirm (escape cancels)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, preview: Preview) -> None:
        super().__init__()
        self.preview = preview
        self.refused = bool(preview.refusals)

    def compose(self) -> ComposeResult:
        colors = palette(self)
        p = self.preview
        target = p.target
        with Vertical():
            yield Label(
                Text.assemble(("Deploy ", "bold"), (target.short, f"bold {colors.commit}"), " ", target.subject)
            )
            plan = Text()
            n = len(p.commits)
            plan.append(f"{n} commit{'s' if n != 1 else ''}", style="bold")
            plan.append(f" to {p.hosts} hosts in {p.chunks} chunk{'s' if p.chunks != 1 else ''} of {p.chunk_size}")
            plan.append(f", strategy {p.strategy}{' (rolling)' if p.rolling else ''}")
            plan.append(f", up to {p.allowed_failures} failed host{'s' if p.allowed_failures != 1 else ''} allowed")
            plan.append("\nassets go to every host before any host switches code", style="dim")
            yield Static(plan, id="plan")
            commits = Text()
            for c in reversed(list(p.commits)):
                why = blocked_reason(c)
                commits.append("  ✘ " if why else "  ✔ ", style=f"bold {colors.failed}" if why else colors.ok)
                commits.append(f"{c.short} ", style=colors.commit)
                commits.append(f"{c.subject}  ")
                commits.append(c.author, style="dim")
                if why:
                    commits.append(f"  {why}", style=f"bold {colors.failed}")
                commits.append("\n")
            with VerticalScroll(id="commits"):
                yield Static(commits)
            if self.refused:
                refusals = Text("Refused:\n", style="bold")
                for line in p.refusals:
                    refusals.append(f"  {line}\n")
                refusals.append("To deploy anyway, type why (it is logged with your name):", style="bold")
                yield Static(refusals, id="refusals")
                yield Input(placeholder="override reason", id="override")
            with Horizontal(id="buttons"):
                yield Button(
                    "Deploy anyway" if self.refused else "Deploy",
                    id="confirm",
                    variant="error" if self.refused else "success",
                    disabled=self.refused,
                )
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.refused:
            self.add_class("-refused")
            reason = self.query_one("#override", Input)
            reason.cursor_blink = not self.app.is_headless  # steady screenshots
            reason.focus()
        else:
            self.query_one("#confirm", Button).focus()

    @on(Input.Changed, "#override")
    def _reason_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = not event.value.strip()

    @on(Input.Submitted, "#override")
    def _reason_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._confirm()
        else:
            self.notify("A refused range needs an override reason.", severity="warning")

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        override = None
        if self.refused:
            override = self.query_one("#override", Input).value.strip()
            if not override:
                return
        self.dismiss(DeployChoice(self.preview.target.sha, override))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
