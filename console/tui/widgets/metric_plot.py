"""One key metric's plot: its line, round ticks, clock times, and a labelled line per deploy.

The plot is drawn by plotext at the widget's own size, with the ticks of `console.tui.axes`:
Y ticks at round values (an all-zero series lies on a labelled 0), X ticks at clock times.
Each deploy marker (`console.service.Marker`) is a vertical line at the moment its code
went live (or, for a deploy that switched no host, when it ended), in its kind's colour, and
labelled with its kind's glyph and the release's short SHA where there is room, so the
three kinds are told apart without colour too (`MARKER_GLYPHS`, shown in the legend).

A plot is built once per size and data (`show`), not on every repaint: plotext takes tens
of milliseconds for a plot, and a repaint happens on every tab switch.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from console.core.text import printable, short
from console.service import Marker
from console.tui.axes import clock_label, clock_ticks, tick_label, value_ticks
from console.tui.theme import palette, rgb

#: Marker kind -> the glyph that labels its line (and its entry in the legend).
MARKER_GLYPHS = {"deploy": "▲", "failed": "✕", "switch": "◀"}
#: Marker kind -> what the legend calls it.
MARKER_NAMES = {"deploy": "deploy", "failed": "failed, no host switched", "switch": "switch back"}

Series = Sequence[tuple[float, float | None]]


class MetricPlot(PlotextPlot):
    """The samples of one metric over a window, with the deploy markers in it."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.series: Series = ()
        self.markers: Sequence[Marker] = ()
        self.start = self.end = 0.0
        self._version = 0
        self._built: tuple[object, RenderResult] | None = None

    def show(self, series: Series, markers: Sequence[Marker], start: float, end: float) -> None:
        """Plot `series` over [start, end] with the markers that fall in it."""
        self.series, self.start, self.end = series, start, end
        self.markers = [m for m in markers if start <= m.ts <= end]
        self._version += 1
        self.refresh()

    def render(self) -> RenderResult:
        key = (self.size, self._version, self.app.theme)
        if self._built is None or self._built[0] != key:
            self._built = (key, self._build())
        return self._built[1]

    def _build(self) -> RenderResult:
        values = [v for _, v in self.series if v is not None]
        if not values:
            return Text("no samples in this window yet", style="dim")
        width, height = self.size
        plt = self.plt
        plt.clear_figure()
        colors = palette(self)
        minutes = [(t - self.end) / 60 for t, _ in self.series]
        for segment in _segments(minutes, [v for _, v in self.series]):
            plt.plot(*segment, marker="braille", color=rgb(colors.line))
        rows = max(2, height - 3)  # the frame's two lines and the time labels take three
        ticks = value_ticks(min(values), max(values), most=max(2, min(6, rows // 2 + 1)))
        step = ticks[1] - ticks[0]
        # every tick the same number of rows apart: the rows left over go above the top tick
        apart = max(1, (rows - 1) // (len(ticks) - 1))
        spare = rows - 1 - apart * (len(ticks) - 1)
        top = ticks[-1] + spare * step / apart
        plt.ylim(ticks[0], top)
        plt.yticks(ticks, [tick_label(v, step) for v in ticks])
        left = (self.start - self.end) / 60
        plt.xlim(left, 0)
        times = clock_ticks(self.start, self.end, most=max(1, (width - 8) // 9))
        plt.xticks([(t - self.end) / 60 for t in times], [clock_label(t) for t in times])
        label_width = max(len(tick_label(v, step)) for v in ticks)
        canvas = max(1, width - label_width - 3)
        canvas_color = rgb(self.app.theme_variables["surface"])  # the auto theme's canvas colour
        # labels go on the top row, or the row below where the one before is in the way
        label_rows = [top, top - (top - ticks[0]) / (rows - 1)][: 2 if rows > 2 else 1]
        free_from = [0] * len(label_rows)  # per label row, the first canvas column a label may use
        for marker in self.markers:
            x = (marker.ts - self.end) / 60
            color = rgb(colors.marker(marker.kind))
            plt.vline(x, color)
            column = round((x - left) / -left * (canvas - 1)) if left else 0
            label = f"{MARKER_GLYPHS.get(marker.kind, '│')} {printable(short(marker.revision), 12)}"
            if canvas - column < len(label):
                label = label[:1]
            row = next((i for i, free in enumerate(free_from) if column >= free), None)
            if row is None:
                continue
            plt.text(label, x, label_rows[row], color=color, background=canvas_color, alignment="left")
            free_from[row] = column + len(label) + 1
        return super().render()


def _segments(xs: list[float], ys: list[float | None]) -> list[tuple[list[float], list[float]]]:
    """The runs of a series between its gaps (no data), each drawn as a line of its own."""
    out: list[tuple[list[float], list[float]]] = []
    run_x: list[float] = []
    run_y: list[float] = []
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if run_x:
                out.append((run_x, run_y))
            run_x, run_y = [], []
        else:
            run_x.append(x)
            run_y.append(y)
    if run_x:
        out.append((run_x, run_y))
    return out
