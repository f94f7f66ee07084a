"""One key metric: its plot over the last minutes with a line at each deploy, and beside it
the value now, the rule, how much baseline a deploy now would be judged against, and the
watch verdict (ok / degraded, with numbers)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from console.core.events import WatchVerdict
from console.service import KeyMetric, Marker
from console.tui.format import plain
from console.tui.theme import palette
from console.tui.widgets.metric_plot import Drawn, MetricPlot, Series


def baseline_seconds(series: Series, now: float, baseline: float) -> float:
    """Seconds of the `baseline` window before `now` that have samples in `series` (a step
    that began before the window and ends in it counts from its start)."""
    step = series[1][0] - series[0][0] if len(series) > 1 else 0.0
    first = next((t for t, v in series if v is not None and t + step > now - baseline), None)
    return 0.0 if first is None else min(baseline, now - first)


class MetricGraph(Horizontal):
    """A key metric over time, its deploy markers, and its verdict."""

    def __init__(
        self, metric: KeyMetric, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.metric = metric
        self.border_title = plain(metric.name + (f" ({metric.unit})" if metric.unit else ""), 80)
        self._verdict_shown: Text | None = None

    def compose(self) -> ComposeResult:
        yield MetricPlot()
        yield Static(Text("waiting for samples…", style="dim"), classes="verdict")

    def show(
        self,
        series: Series,
        markers: Sequence[Marker],
        verdict: WatchVerdict | None,
        window: tuple[float, float],
        now: float,
        baseline: float,
        drawn: Drawn | None = None,
    ) -> None:
        """Plot the samples over the `window` (start, end) with the markers (`drawn`: already
        drawn); write the latest value, how much of the `baseline` seconds a deploy at `now`
        would be judged against, and the verdict. The text is laid out again only if it
        changed."""
        self.query_one(MetricPlot).show(series, markers, *window, drawn)
        last = next((v for _, v in reversed(series) if v is not None), None)
        have = baseline_seconds(series, now, baseline)
        text = self._verdict_text(verdict, last, have, baseline)
        if text != self._verdict_shown:
            self._verdict_shown = text
            self.query_one(".verdict", Static).update(text)

    def _verdict_text(self, verdict: WatchVerdict | None, last: float | None, have: float, baseline: float) -> Text:
        colors = palette(self)
        text = Text()
        unit = f" {self.metric.unit}" if self.metric.unit else ""
        text.append("now ", style="dim")
        text.append(f"{last:,.1f}{unit}" if last is not None else "no data", style="bold")
        bad = "-" if self.metric.bad == "down" else "+"
        text.append(f"  limit {bad}{self.metric.limit:.0%}", style="dim")
        if self.metric.dry_run:
            text.append("\ndry run: never halts", style="italic dim")
        if have < baseline:
            text.append(f"\nbaseline building: {have:.0f} of {baseline:.0f} s", style=colors.caution)
        if verdict is None:
            text.append("\nno verdict yet", style="dim")
            return text
        text.append("\n")
        color = {"ok": colors.ok, "degraded": colors.failed, "no data": colors.pending}.get(verdict.verdict, "")
        text.append(f" {verdict.verdict.upper()} ", style=f"reverse bold {color}".rstrip())
        text.append(" final" if verdict.final else " watching", style="dim")
        text.append(f"  {verdict.deploy_id}", style="dim")
        text.append(f"\n{verdict.summary}")
        return text
