"""The highlighted commit: subject, author, review, DDL hits, files, and what a deploy ships."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from console.core.text import printable
from console.service import Change
from console.tui.theme import palette
from console.tui.widgets.queue_table import blocked_reason


class CommitDetail(Static):
    """Shows one commit and the range a deploy of it would include."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", name=name, id=id, classes=classes)

    def show(self, change: Change | None, included: Sequence[Change] = (), *, files_shown: int = 8) -> None:
        """Render `change`; at most `files_shown` of its files are named."""
        if change is None:
            self.update(Text("The queue is empty: trunk is deployed.", style="dim"))
            return
        colors = palette(self)
        text = Text()
        text.append(f"{change.short} ", style=f"bold {colors.commit}")
        text.append(printable(change.subject), style="bold")
        text.append("\n")
        text.append(f"{printable(change.author, 60)} <{printable(change.email, 60)}>", style="dim")
        reviewers = printable(", ".join(change.reviewers))
        if change.approved:
            text.append(f"   reviewed by {reviewers or 'someone'}", style=colors.ok)
        else:
            text.append("   not reviewed: blocked", style=f"bold {colors.failed}")
        text.append("\n")
        for hit in change.ddl:
            text.append("DDL ", style=f"bold reverse {colors.attention}")
            text.append(f" {printable(hit.file, 100)}:{hit.line} ", style=colors.attention)
            text.append(f"{printable(hit.text, 120)}  ({printable(hit.why, 60)})\n", style="dim")
        files = change.files
        text.append(f"{len(files)} file{'s' if len(files) != 1 else ''}: ", style="bold")
        more = len(files) - files_shown
        text.append(printable(", ".join(files[:files_shown]), 600) + (f" … +{more}" if more > 0 else ""))
        text.append("\n")
        text.append(
            f"A deploy of {change.short} ships {len(included)} commit{'s' if len(included) != 1 else ''}:\n",
            style="bold",
        )
        for c in reversed(list(included)):
            why = blocked_reason(c)
            mark = Text("  ✘ ", style=f"bold {colors.failed}") if why else Text("  ✔ ", style=colors.ok)
            text.append_text(mark)
            text.append(f"{c.short} ", style=colors.commit)
            text.append(printable(c.subject))
            if why:
                text.append(f"  blocked: {why}", style=f"bold {colors.failed}")
            text.append("\n")
        blocked = [c for c in included if blocked_reason(c)]
        if blocked:
            text.append(
                f"{len(blocked)} blocked commit{'s' if len(blocked) != 1 else ''} in range: "
                "deploying needs an override reason.",
                style=f"bold {colors.attention}",
            )
        self.update(text)
