"""One key metric: a plot of the last minutes with a vertical line at each deploy, and
the watch verdict (ok / degraded, with numbers) beside it."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static
from textual_plotext import PlotextPlot

from console.core.events import WatchVerdict
from console.service import KeyMetric
from console.tui.format import plain
from console.tui.theme import PLOT_LINE, PLOT_MARKER, palette


class MetricGraph(Horizontal):
    """A key metric over time, deploy markers, and its verdict."""

    def __init__(
        self, metric: KeyMetric, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.metric = metric
        self.border_title = plain(metric.name + (f" ({metric.unit})" if metric.unit else ""), 80)

    def compose(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static(Text("waiting for samples…", style="dim"), classes="verdict")

    def show(
        self,
        series: Sequence[tuple[float, float | None]],
        markers: Sequence[tuple[float, str]],
        verdict: WatchVerdict | None,
        now: float,
    ) -> None:
        """Draw the samples (x in minutes before `now`), the markers and the verdict."""
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_figure()
        xs = [(t - now) / 60 for t, v in series if v is not None]
        ys = [v for t, v in series if v is not None]
        if xs:
            plt.plot(xs, ys, marker="braille", color=PLOT_LINE)
            start = (series[0][0] - now) / 60
            plt.xlim(start, 0)
            for t, _label in markers:
                x = (t - now) / 60
                if start <= x <= 0:
                    plt.vline(x, PLOT_MARKER)
        plt.xlabel("minutes ago")
        plt.title(self.metric.name)
        plot.refresh()
        self.query_one(".verdict", Static).update(self._verdict_text(verdict, ys[-1] if ys else None))

    def _verdict_text(self, verdict: WatchVerdict | None, last: float | None) -> Text:
        colors = palette(self)
        text = Text()
        unit = f" {self.metric.unit}" if self.metric.unit else ""
        text.append("now ", style="dim")
        text.append(f"{last:,.1f}{unit}\n" if last is not None else "no data\n", style="bold")
        bad = "falls" if self.metric.bad == "down" else "rises"
        text.append(f"degraded if it {bad} {self.metric.limit:.0%}\n", style="dim")
        if self.metric.dry_run:
            text.append("dry run: never halts\n", style="italic dim")
        if verdict is None:
            text.append("\nno verdict yet", style="dim")
            return text
        text.append("\n")
        color = {"ok": colors.ok, "degraded": colors.failed, "no data": colors.pending}.get(verdict.verdict, "")
        text.append(f" {verdict.verdict.upper()} ", style=f"reverse bold {color}".rstrip())
        if verdict.final:
            text.append(" final", style="dim")
        text.append(f"\n{verdict.summary}\n")
        if verdict.baseline is not None and verdict.current is not None:
            text.append(f"baseline {verdict.baseline:,.1f} → {verdict.current:,.1f}", style="dim")
            if verdict.change is not None:
                text.append(f" ({verdict.change:+.0%})", style="dim")
            text.append("\n")
        text.append(f"deploy {verdict.deploy_id}", style="dim")
        return text
