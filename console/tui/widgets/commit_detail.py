"""The highlighted commit: subject, author, review, DDL hits, files, and what a deploy ships."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Static

from console.tui.widgets.queue_table import blocked_reason


class CommitDetail(Static):
    """Shows one commit and the range a deploy of it would include."""

    DEFAULT_CSS = """
    CommitDetail {
        height: 1fr;
        padding: 0 1;
        border-top: solid $primary;
        overflow-y: auto;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", name=name, id=id, classes=classes)

    def show(self, change: Any | None, included: Sequence[Any] = ()) -> None:
        if change is None:
            self.update(Text("The queue is empty: trunk is deployed.", style="dim"))
            return
        text = Text()
        text.append(f"{change.short} ", style="bold #00afd7")
        text.append(change.subject, style="bold")
        text.append("\n")
        text.append(f"{change.author} <{change.email}>", style="dim")
        reviewers = ", ".join(getattr(change, "reviewers", ()) or ())
        if change.approved:
            text.append(f"   reviewed by {reviewers or 'someone'}", style="#5fd75f")
        else:
            text.append("   not reviewed: blocked", style="bold #ff3f3f")
        text.append("\n")
        for hit in getattr(change, "ddl", ()) or ():
            text.append("DDL ", style="bold reverse #ff8700")
            text.append(f" {hit.file}:{hit.line} ", style="#ff8700")
            text.append(f"{hit.text}  ({hit.why})\n", style="dim")
        files = list(getattr(change, "files", ()) or ())
        text.append(f"{len(files)} file{'s' if len(files) != 1 else ''}: ", style="bold")
        text.append(", ".join(files[:8]) + (f" … +{len(files) - 8}" if len(files) > 8 else ""))
        text.append("\n")
        text.append(
            f"A deploy of {change.short} ships {len(included)} commit{'s' if len(included) != 1 else ''}:\n",
            style="bold",
        )
        for c in reversed(list(included)):
            why = blocked_reason(c)
            mark = Text("  ✘ ", style="bold #ff3f3f") if why else Text("  ✔ ", style="#5fd75f")
            text.append_text(mark)
            text.append(f"{c.short} ", style="#00afd7")
            text.append(c.subject)
            if why:
                text.append(f"  blocked: {why}", style="bold #ff3f3f")
            text.append("\n")
        blocked = [c for c in included if blocked_reason(c)]
        if blocked:
            text.append(
                f"{len(blocked)} blocked commit{'s' if len(blocked) != 1 else ''} in range: "
                "deploying needs an override reason.",
                style="bold #ff8700",
            )
        self.update(text)
