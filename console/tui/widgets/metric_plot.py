"""One key metric's plot: its line, round ticks, clock times, and a labelled line per deploy.

The plot is drawn by plotext at the widget's own size, with the ticks of `console.tui.axes`:
Y ticks at round values (an all-zero series lies on a labelled 0), X ticks at clock times.
Each deploy marker (`console.service.Marker`) is a vertical line at the moment its code
went live (or, for a deploy that switched no host, when it ended), in its kind's colour, and
labelled with its kind's glyph and the release's short SHA where there is room, so the
three kinds are told apart without colour too (`MARKER_GLYPHS`, shown in the legend).

A plot is drawn once per size and data, not on every repaint: plotext takes tens of
milliseconds for a plot, and a repaint happens on every tab switch. `draw` is a plain
function of the data, the size and the colours, so the metrics pane draws each plot on its
worker thread at the size the plot has (`Drawn`), and the UI thread only draws when the
size changed since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Size
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from console.core.text import printable, short
from console.service import Marker
from console.tui.axes import clock_label, clock_ticks, tick_label, value_ticks
from console.tui.theme import Palette, palette, rgb

#: Marker kind -> the glyph that labels its line (and its entry in the legend).
MARKER_GLYPHS = {"deploy": "▲", "failed": "✕", "switch": "◀"}
#: Marker kind -> what the legend calls it.
MARKER_NAMES = {"deploy": "deploy", "failed": "failed, no host switched", "switch": "switch back"}

Series = Sequence[tuple[float, float | None]]


@dataclass(frozen=True)
class Style:
    """What a plot's look depends on besides its data: the palette, the canvas colour and
    plotext's theme (the app's, registered by `PlotextPlot`)."""

    colors: Palette
    canvas: tuple[int, int, int]
    theme: str


@dataclass(frozen=True)
class Drawn:
    """A plot drawn for one size and style."""

    size: Size
    style: Style
    text: Text


def draw(series: Series, markers: Sequence[Marker], start: float, end: float, size: Size, style: Style) -> Text:
    """The plot of `series` over [start, end] with the `markers` in it, at `size` (any thread)."""
    values = [v for _, v in series if v is not None]
    if not values:
        return Text("no samples in this window yet", style="dim")
    width, height = size
    colors = style.colors
    plt = Plot()
    minutes = [(t - end) / 60 for t, _ in series]
    for segment in _segments(minutes, [v for _, v in series]):
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
    left = (start - end) / 60
    plt.xlim(left, 0)
    times = clock_ticks(start, end, most=max(1, (width - 8) // 9))
    plt.xticks([(t - end) / 60 for t in times], [clock_label(t) for t in times])
    label_width = max(len(tick_label(v, step)) for v in ticks)
    canvas = max(1, width - label_width - 3)
    # labels go on the top row, or the row below where the one before is in the way
    label_rows = [top, top - (top - ticks[0]) / (rows - 1)][: 2 if rows > 2 else 1]
    free_from = [0] * len(label_rows)  # per label row, the first canvas column a label may use
    for marker in markers:
        if not start <= marker.ts <= end:
            continue
        x = (marker.ts - end) / 60
        color = rgb(colors.marker(marker.kind))
        plt.vline(x, color)
        column = round((x - left) / -left * (canvas - 1)) if left else 0
        label = f"{MARKER_GLYPHS.get(marker.kind, '│')} {printable(short(marker.revision), 12)}"
        if canvas - column < len(label):
            label = label[:1]
        row = next((i for i, free in enumerate(free_from) if column >= free), None)
        if row is None:
            continue
        plt.text(label, x, label_rows[row], color=color, background=style.canvas, alignment="left")
        free_from[row] = column + len(label) + 1
    # what PlotextPlot.render does around plotext's build
    plt.plotsize(width, height)
    plt._set_size(width, height)
    plt.theme(style.theme)
    return Text.from_ansi(plt.build())


class MetricPlot(PlotextPlot):
    """The samples of one metric over a window, with the deploy markers in it."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.series: Series = ()
        self.markers: Sequence[Marker] = ()
        self.start = self.end = 0.0
        self._drawn: Drawn | None = None

    @property
    def style(self) -> Style:
        """How this plot looks now (call on the UI thread)."""
        return Style(
            palette(self), rgb(self.app.theme_variables["surface"]), self._get_plotext_theme_name(self.app.theme)
        )

    def show(
        self, series: Series, markers: Sequence[Marker], start: float, end: float, drawn: Drawn | None = None
    ) -> None:
        """Plot `series` over [start, end] with the markers that fall in it; `drawn` is the
        plot already drawn for it (used if it has this plot's size and style)."""
        self.series, self.start, self.end = series, start, end
        self.markers = [m for m in markers if start <= m.ts <= end]
        self._drawn = drawn
        self.refresh()

    def render(self) -> Text:
        style = self.style
        drawn = self._drawn
        if drawn is None or drawn.size != self.size or drawn.style != style:
            text = draw(self.series, self.markers, self.start, self.end, self.size, style)
            drawn = self._drawn = Drawn(self.size, style, text)
        return drawn.text


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
