"""Metrics [3]: every key metric over the last minutes, a line at each deploy, the verdicts.

The graphs advance a step at a time (`steps`): each step is drawn once it is over, with the
value it will always have, and a look within the same step fetches and draws nothing.
Fetching and drawing every 5 s a window that slid with the clock cost 2.5 % of a core on
this tab alone (three plotext plots, the samples re-binned, the verdicts laid out again),
and each look shifted every line a little.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.widgets import Static

from console.core.events import WatchVerdict
from console.service import Marker
from console.tui.panes.pane import Pane
from console.tui.theme import palette
from console.tui.widgets.metric_graph import MetricGraph
from console.tui.widgets.metric_plot import MARKER_GLYPHS, MARKER_NAMES, Drawn, MetricPlot, Style, draw
from console.tui.workers import service_worker

#: Per key metric (by its index): its samples, the verdict the service has for it, and its
#: plot drawn on the worker thread.
Samples = list[tuple[int, list[tuple[float, float | None]], WatchVerdict | None, Drawn | None]]
#: Seconds after a step ends before it is drawn: the collector writes each second once it is over.
SETTLE = 2.0


def steps(now: float, window: float) -> tuple[float, float, float]:
    """(start, end, step) of the graphs at `now`: `window` seconds in steps of at least 1 s
    (120 of them at most), on multiples of the step, ending with the last step that has been
    over for `SETTLE` seconds."""
    step = max(1.0, window / 120)
    end = math.floor((now - SETTLE) / step) * step
    return end - window, end, step


class MetricsPane(Pane):
    """One graph per key metric, with a line at each deploy and the watch verdict."""

    LABEL = "Metrics [3]"
    PANE_ID = "metrics"
    FOCUS = "#graphs"

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.live_verdicts: dict[str, WatchVerdict] = {}
        """Verdicts of the deploy being followed, newer than what the service last said."""
        self._asked: tuple[float, str | None] | None = None  # (end, deploy) of the last look

    def compose(self) -> ComposeResult:
        yield Static(self._legend(), id="metrics-legend")
        with VerticalScroll(id="graphs"):
            for i, metric in enumerate(self.app.service.key_metrics):
                yield MetricGraph(metric, id=f"metric-{i}")

    def _legend(self) -> Text:
        colors = palette(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"last {self.app.metrics_window / 60:.0f} minutes, local time   ", style="dim")
        for kind, glyph in MARKER_GLYPHS.items():
            text.append(f"{glyph} ", style=f"bold {colors.marker(kind)}")
            text.append(f"{MARKER_NAMES[kind]}   ")
        return text

    def load(self, deploy_id: str | None, *, new_step: bool = False, laid_out: bool = False) -> None:
        """Samples, deploy markers and the verdicts of `deploy_id` (default: the newest deploy),
        fetched and drawn on a worker thread; nothing while this tab is not in front, and with
        `new_step` (the console's timer) nothing until another step is over.

        A tab just brought to the front has no size yet: the plots are measured after the
        next layout, or the worker would draw them at no size and each would be drawn again
        on the UI thread (~25 ms a graph, most of a tab switch's time)."""
        if not self.display:
            return
        start, end, step = steps(self.app.clock(), self.app.metrics_window)
        if new_step and self._asked == (end, deploy_id):
            return
        plots = [graph.query_one(MetricPlot) for graph in self.query(MetricGraph)]
        if not laid_out and any(not plot.size.area for plot in plots):
            self.call_after_refresh(self.load, deploy_id, laid_out=True)
            return
        self._asked = (end, deploy_id)
        self._load(deploy_id, (start, end, step), [plot.size for plot in plots], plots[0].style if plots else None)

    @service_worker("metrics")
    def _load(
        self, deploy_id: str | None, window: tuple[float, float, float], sizes: list[Size], style: Style | None
    ) -> None:
        service = self.app.service
        start, end, step = window
        markers = service.markers(start)
        if deploy_id is None:
            records = service.history(1)
            deploy_id = records[0].id if records else None
        verdicts: dict[str, WatchVerdict] = {}
        if deploy_id:
            for verdict in service.verdicts(deploy_id):
                verdicts[verdict.metric] = verdict
        samples: Samples = []
        for i, metric in enumerate(service.key_metrics):
            series = service.metric_series(metric, start, end, step)
            drawn = None
            if style is not None and i < len(sizes) and sizes[i].area:
                drawn = Drawn(sizes[i], style, draw(series, markers, start, end, sizes[i], style))
            samples.append((i, series, verdicts.get(metric.name), drawn))
        self.app.call_from_thread(self._show, samples, markers, start, end)

    def _show(self, samples: Samples, markers: list[Marker], start: float, end: float) -> None:
        baseline = self.app.service.metrics_baseline
        now = self.app.clock()
        for i, series, verdict, drawn in samples:
            shown = self.live_verdicts.get(self.app.service.key_metrics[i].name) or verdict
            graph = self.query_one(f"#metric-{i}", MetricGraph)
            graph.show(series, markers, shown, (start, end), now, baseline, drawn)
