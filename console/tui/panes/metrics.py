"""Metrics [3]: every key metric over the last minutes, a line at each deploy, the verdicts."""

from __future__ import annotations

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


class MetricsPane(Pane):
    """One graph per key metric, with a line at each deploy and the watch verdict."""

    LABEL = "Metrics [3]"
    PANE_ID = "metrics"
    FOCUS = "#graphs"

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.live_verdicts: dict[str, WatchVerdict] = {}
        """Verdicts of the deploy being followed, newer than what the service last said."""

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

    def load(self, deploy_id: str | None, *, laid_out: bool = False) -> None:
        """Samples, deploy markers and the verdicts of `deploy_id` (default: the newest deploy),
        fetched and drawn on a worker thread; nothing while this tab is not in front.

        A tab just brought to the front has no size yet: the plots are measured after the
        next layout, or the worker would draw them at no size and each would be drawn again
        on the UI thread (~25 ms a graph, most of a tab switch's time)."""
        if not self.display:
            return
        plots = [graph.query_one(MetricPlot) for graph in self.query(MetricGraph)]
        if not laid_out and any(not plot.size.area for plot in plots):
            self.call_after_refresh(self.load, deploy_id, laid_out=True)
            return
        self._load(deploy_id, [plot.size for plot in plots], plots[0].style if plots else None)

    @service_worker("metrics")
    def _load(self, deploy_id: str | None, sizes: list[Size], style: Style | None) -> None:
        service = self.app.service
        now = self.app.clock()
        start = now - self.app.metrics_window
        step = max(1.0, self.app.metrics_window / 120)
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
            series = service.metric_series(metric, start, now, step)
            drawn = None
            if style is not None and i < len(sizes) and sizes[i].area:
                drawn = Drawn(sizes[i], style, draw(series, markers, start, now, sizes[i], style))
            samples.append((i, series, verdicts.get(metric.name), drawn))
        self.app.call_from_thread(self._show, samples, markers, now)

    def _show(self, samples: Samples, markers: list[Marker], now: float) -> None:
        start = now - self.app.metrics_window
        baseline = self.app.service.metrics_baseline
        for i, series, verdict, drawn in samples:
            shown = self.live_verdicts.get(self.app.service.key_metrics[i].name) or verdict
            self.query_one(f"#metric-{i}", MetricGraph).show(series, markers, shown, start, now, baseline, drawn)
