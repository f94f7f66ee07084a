"""The deploy confirmation: the plan (commits, hosts, chunks, strategy; with `strategy: tree`,
which hosts feed which, each line cut to the dialog's width), what is refused and why, an
override reason when the range is refused, and the options: rolling, only the hosts that
failed last time, and a dry run that shows the plan without changing anything.

The dialog opens at once and asks the service for the preview itself, so keys typed before
the plan is shown stay in the dialog: printable ones become the start of the override
reason, and none reaches the screen below (nor stacks a second dialog). It also starts the
deploy itself: if the engine refuses (the environment is locked, the range changed), the
app shows the one-line error and the dialog stays open with the reason as typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from console.core.text import printable, short
from console.service import Preview
from console.tui.theme import palette
from console.tui.widgets.console_footer import ConsoleFooter
from console.tui.widgets.queue_table import blocked_reason
from console.tui.workers import service_worker

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


@dataclass(frozen=True)
class DeployChoice:
    """What the person chose; `override` is their reason when the range was refused."""

    sha: str
    override: str | None = None
    rolling: bool = False
    only_failed: bool = False


class ConfirmDeploy(ModalScreen[str | None]):
    """Shows the `Preview` of deploying `sha`, and starts the deploy; returns its id
    (None: cancelled)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "app.focus_next", "Next field"),
        Binding("shift+tab", "app.focus_previous", "Previous field", show=False),
    ]

    if TYPE_CHECKING:
        app = getters.app(ConsoleApp)

    def __init__(self, sha: str) -> None:
        super().__init__()
        self.sha = sha
        self.preview: Preview | None = None
        self.typed: list[str] = []  # printable keys pressed before the plan was shown

    @property
    def refused(self) -> bool:
        return bool(self.preview and self.preview.refusals)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            if self.preview is None:
                yield Label(Text.assemble(("Deploy ", "bold"), (short(self.sha), "bold")))
                yield Static(Text("preparing the plan…", style="dim italic"), id="plan")
            else:
                yield from self._compose_preview(self.preview)
        yield ConsoleFooter()

    def _compose_preview(self, p: Preview) -> ComposeResult:
        colors = palette(self)
        target = p.target
        yield Label(
            Text.assemble(("Deploy ", "bold"), (target.short, f"bold {colors.commit}"), " ", printable(target.subject))
        )
        yield Static(self._plan(), id="plan")
        if p.tree:
            yield Static(self._tree(), id="tree")
        commits = Text()
        for c in reversed(list(p.commits)):
            why = blocked_reason(c)
            commits.append("  ✘ " if why else "  ✔ ", style=f"bold {colors.failed}" if why else colors.ok)
            commits.append(f"{c.short} ", style=colors.commit)
            commits.append(f"{printable(c.subject)}  ")
            commits.append(printable(c.author), style="dim")
            if why:
                commits.append(f"  {why}", style=f"bold {colors.failed}")
            commits.append("\n")
        with VerticalScroll(id="commits"):
            yield Static(commits)
        if self.refused:
            refusals = Text("Refused:\n", style="bold")
            for line in p.refusals:
                refusals.append(f"  {printable(line)}\n")
            refusals.append("To deploy anyway, type why (it is logged with your name):", style="bold")
            yield Static(refusals, id="refusals")
            yield Input("".join(self.typed), placeholder="override reason", id="override")
            yield Static("", id="error")
        with Horizontal(id="options"):
            yield Checkbox("Rolling (chunk by chunk)", id="rolling")
            failed = len(p.failed_hosts)
            yield Checkbox(
                f"Only the {failed} failed host{'s' if failed != 1 else ''}" if failed else "Only failed hosts (none)",
                id="only-failed",
                disabled=not failed,
            )
        with VerticalScroll(id="dry-run-output"):
            yield Static("", id="dry-run-text")
        with Horizontal(id="buttons"):
            yield Button(
                "Deploy anyway" if self.refused else "Deploy",
                id="confirm",
                variant="error" if self.refused else "success",
            )
            yield Button("Dry run", id="dry-run")
            yield Button("Cancel", id="cancel")

    def _plan(self) -> Text:
        p = self.preview
        assert p is not None
        only_failed = self._checked("only-failed")
        hosts = len(p.failed_hosts) if only_failed else p.hosts
        chunks = -(-hosts // p.chunk_size)
        plan = Text()
        n = len(p.commits)
        plan.append(f"{n} commit{'s' if n != 1 else ''}", style="bold")
        plan.append(f" to {hosts} hosts in {chunks} chunk{'s' if chunks != 1 else ''} of {p.chunk_size}")
        if only_failed:
            plan.append(f" (the failed ones: {', '.join(p.failed_hosts)})")
        rolling = self._checked("rolling")
        plan.append(f", strategy {p.strategy}{' (rolling)' if rolling else ''}")
        plan.append(f", up to {p.allowed_failures} failed host{'s' if p.allowed_failures != 1 else ''} allowed")
        plan.append("\nassets go to every host before any host switches code", style="dim")
        return plan

    def _tree(self) -> Text:
        """Who feeds whom, the engine's lines (as --dry-run has them), each cut at the
        dialog's edge: the first levels of every stripe's tree show at any width."""
        p = self.preview
        assert p is not None
        lines = p.tree_failed if self._checked("only-failed") else p.tree
        return Text("\n".join(printable(line) for line in lines))

    def _checked(self, checkbox: str) -> bool:
        found = self.query(f"#{checkbox}")
        return bool(found) and found.only_one(Checkbox).value

    def on_mount(self) -> None:
        self._load()

    @service_worker("deploy")
    def _load(self) -> None:
        preview = self.app.service.preview(self.sha)
        self.app.call_from_thread(self._loaded, preview)

    def _loaded(self, preview: Preview) -> None:
        self.preview = preview
        self.call_later(self._show_preview)

    async def _show_preview(self) -> None:
        await self.recompose()
        if self.refused:
            self.add_class("-refused")
            reason = self.query_one("#override", Input)
            reason.cursor_blink = not self.app.is_headless  # steady screenshots
            reason.focus()
        else:
            self.query_one("#confirm", Button).focus()

    def on_key(self, event: events.Key) -> None:
        """Before the plan is shown, keep what is typed (it becomes the override reason)."""
        if self.preview is not None or event.key == "escape":
            return
        if event.is_printable and event.character:
            self.typed.append(event.character)
        elif event.key == "backspace" and self.typed:
            self.typed.pop()
        event.stop()
        event.prevent_default()

    def choice(self) -> DeployChoice:
        override = self.query_one("#override", Input).value.strip() if self.refused else None
        return DeployChoice(self.sha, override, self._checked("rolling"), self._checked("only-failed"))

    @on(Checkbox.Changed)
    def _option_changed(self) -> None:
        self.query_one("#plan", Static).update(self._plan())
        for tree in self.query("#tree").results(Static):
            tree.update(self._tree())

    @on(Input.Changed, "#override")
    def _reason_changed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self._say("")

    def _say(self, error: str) -> None:
        self.query_one("#error", Static).update(Text(error, style=f"bold {palette(self).failed}"))
        self.set_class(bool(error), "-error")

    @on(Input.Submitted, "#override")
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self.preview is None:
            return
        choice = self.choice()
        if self.refused and not choice.override:
            self._say("Say why: a refused range deploys only with a reason, logged with your name.")
            self.query_one("#override", Input).focus()
            return
        self._busy(True)
        self._start(choice)

    def _busy(self, busy: bool) -> None:
        for button in self.query(Button):
            if button.id != "cancel":
                button.disabled = busy

    @service_worker("deploy")
    def _start(self, choice: DeployChoice) -> None:
        deploy_id = None
        try:
            deploy_id = self.app.service.start_deploy(
                choice.sha, choice.override, rolling=choice.rolling, only_failed=choice.only_failed
            )
        finally:  # a refusal is shown by the app; the dialog stays open with what was typed
            self.app.call_from_thread(self._started, deploy_id)

    def _started(self, deploy_id: str | None) -> None:
        if deploy_id is not None:
            self.dismiss(deploy_id)
        else:
            self._busy(False)

    @on(Button.Pressed, "#dry-run")
    def _dry_run_pressed(self) -> None:
        self.query_one("#dry-run-text", Static).update(Text("dry run: planning…", style="dim italic"))
        self.add_class("-dry-run")
        self._dry_run(self.choice())

    @service_worker("deploy")
    def _dry_run(self, choice: DeployChoice) -> None:
        plan = self.app.service.dry_run(
            choice.sha, choice.override, rolling=choice.rolling, only_failed=choice.only_failed
        )
        self.app.call_from_thread(self._show_dry_run, plan)

    def _show_dry_run(self, plan: str) -> None:
        self.query_one("#dry-run-text", Static).update(Text(printable(plan, limit=20_000, newlines=True)))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
