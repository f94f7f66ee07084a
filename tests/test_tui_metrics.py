"""The metric graphs tell the truth: round ticks, a labelled 0, clock times, one labelled
line per deploy by its kind, and how much baseline a deploy now would get (issue 13, item 3)."""

from __future__ import annotations

import itertools
import math
import re

import pytest

from console.core.text import short
from console.tui.axes import clock_ticks, tick_label, value_ticks
from console.tui.widgets.metric_graph import MetricGraph
from console.tui.widgets.metric_plot import MARKER_GLYPHS, MetricPlot
from support.pilot import pilot_test, rendered, until
from support.tui_fixtures import NOW, FakeService, make_app

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("low", "high", "most", "ticks"),
    [
        (160, 360, 5, [100, 200, 300, 400]),  # not 160, 210, 260, ...
        (180, 207, 5, [180, 190, 200, 210]),
        (0.2, 0.9, 5, [0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 0, 5, [0, 1]),  # all zero: an axis from a labelled 0
        (40, 40, 5, [36, 38, 40, 42, 44]),  # a flat line sits in the middle
        (0.3, 41, 3, [0, 50]),  # a rate never goes below 0
        (12_000, 19_000, 5, [12_000, 14_000, 16_000, 18_000, 20_000]),
    ],
)
def test_value_ticks_are_round_and_cover_the_data(low, high, most, ticks):
    assert value_ticks(low, high, most) == ticks


def test_tick_labels_are_as_short_as_their_step():
    assert [tick_label(v, 100) for v in (0, 100, 300)] == ["0", "100", "300"]
    assert [tick_label(v, 0.2) for v in (0.2, 1.0)] == ["0.2", "1.0"]
    assert [tick_label(v, 2000) for v in (12_000, 20_000)] == ["12k", "20k"]
    assert tick_label(12_500, 500) == "12.5k" and tick_label(3_000_000, 1_000_000) == "3M"


def test_clock_ticks_fall_on_round_minutes_and_fit_the_width():
    end = NOW
    for most in (2, 4, 8, 16):
        ticks = clock_ticks(end - 900, end, most)
        assert 1 <= len(ticks) <= most
        steps = {b - a for a, b in itertools.pairwise(ticks)}
        assert len(steps) <= 1
        assert all(end - 900 <= t <= end and t % 60 == 0 for t in ticks)
    assert len(clock_ticks(end - 900, end, 16)) == 15  # every minute when there is room


def plot_text(app, index: int) -> str:
    return rendered(app.console_screen.query_one(f"#metric-{index}", MetricGraph).query_one(MetricPlot))


@pilot_test
async def test_graphs_have_round_ticks_clock_times_and_a_labelled_line_per_deploy():
    service = FakeService(hosts=20)
    app = make_app(service)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: "┤" in plot_text(app, 0))
        legend = rendered(app.console_screen.query_one("#metrics-legend"))
        assert "▲ deploy" in legend and "✕ failed, no host switched" in legend and "◀ switch back" in legend
        for index in range(3):
            text = plot_text(app, index)
            lines = text.splitlines()
            assert len(lines) >= 6, text  # readable at 100x30: more than a row or two of plot
            ticks = [float(m) for m in re.findall(r"^\s*([\d.]+)┤", text, re.M)]
            assert len(ticks) >= 2
            step = ticks[0] - ticks[1]
            assert step > 0 and all(abs((a - b) - step) < 1e-9 for a, b in itertools.pairwise(ticks))
            assert round(step / 10 ** math.floor(math.log10(step)), 6) in (1, 2, 5)  # 1, 2 or 5 x 10^n
            # one labelled line per deploy in the window, by kind: the deploy that switched no
            # host, the switch back, the partial deploy and the good one
            kinds = {"d-0038": "failed", "d-0039": "switch", "d-0040": "deploy", "d-0041": "deploy"}
            for record in service.records:
                assert f"{MARKER_GLYPHS[kinds[record.id]]} {short(record.revision)}" in text, (record.id, text)
            times = re.findall(r"\b\d\d:\d\d\b", lines[-1])
            assert len(times) >= 3 and all(t[-1] in "05" for t in times)  # every 5 minutes at 100 columns
        # the errors series is all zero: a flat line on a labelled 0
        zero_row = next(line for line in plot_text(app, 2).splitlines() if line.lstrip().startswith("0┤"))
        assert set(zero_row.split("┤")[1].rstrip("│")) == {"⣀"}


@pilot_test
async def test_a_young_fleet_says_how_much_baseline_a_deploy_would_get():
    service = FakeService(hosts=20)
    for metric in service.key_metrics:
        service.series_start[metric.name] = NOW - 50  # the demo started 50 s ago (on a step of 7.5 s)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        graph = app.console_screen.query_one("#metric-1", MetricGraph)
        await until(pilot, lambda: "baseline building" in rendered(graph.query_one(".verdict")))
        assert "baseline building: 50 of 120 s" in rendered(graph.query_one(".verdict"))
        service.series_start.clear()
        await pilot.press("r")
        await until(pilot, lambda: "baseline building" not in rendered(graph.query_one(".verdict")))


@pilot_test
async def test_bringing_the_metrics_tab_to_the_front_draws_its_plots_off_the_ui_thread(monkeypatch):
    """A tab just brought to the front has no size yet: measured then, the worker drew the
    plots at no size, and each was drawn again on the UI thread (~25 ms a graph, most of a
    tab switch's time). They are measured after the layout, and drawn on the worker."""
    import threading

    import console.tui.panes.metrics as pane
    import console.tui.widgets.metric_plot as plot

    threads: list[str] = []
    real = plot.draw

    def draw(*args, **kwargs):
        if args[0]:  # a plot with samples (the first render, before any, is cheap)
            threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(plot, "draw", draw)
    monkeypatch.setattr(pane, "draw", draw)
    app = make_app(FakeService(hosts=20))
    async with app.run_test(size=(100, 30)) as pilot:
        plots = list(app.console_screen.query(MetricPlot))
        for _ in range(2):
            drawn = len(threads)
            await pilot.press("3")
            await until(pilot, lambda n=drawn + 3: len(threads) >= n)
            await pilot.pause(0.2)
            await pilot.press("1")
            await pilot.pause(0.2)
    assert "MainThread" not in threads, threads
    assert all(p._drawn is not None and p._drawn.size.area for p in plots)


@pilot_test
async def test_the_graphs_advance_a_step_at_a_time():
    """The graphs end with the last step that is over, on multiples of the step, so a step
    reads the same at every look; the console's timer fetches and draws nothing until
    another step is over (fetching a sliding window every 5 s cost 2.5 % of a core)."""
    from console.tui.panes.metrics import SETTLE, steps

    start, end, step = steps(NOW + 0.4, 900)
    assert step == 7.5 and end - start == 900 and end % step == 0 and NOW - step < end + SETTLE <= NOW + 0.4
    service = FakeService(hosts=20)
    asked: list[float] = []
    real = service.metric_series
    service.metric_series = lambda metric, start, end, step: asked.append(end) or real(metric, start, end, step)
    app = make_app(service)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.console_screen
        # the console shows the last deploy; its end refreshes every pane, the metrics too
        await until(pilot, lambda: screen.done_seen)
        await pilot.press("3")
        await until(pilot, lambda: len(asked) == 3)
        first = steps(app.clock.now, 900)[1]
        for _ in range(3):  # the timer's looks within the same step
            app.clock.now += 1
            assert steps(app.clock.now, 900)[1] == first
            screen.load_metrics(new_step=True)
            await pilot.pause(0.05)
        assert len(asked) == 3
        app.clock.now = steps(app.clock.now, 900)[1] + step + SETTLE  # the next step is over
        screen.load_metrics(new_step=True)
        await until(pilot, lambda: len(asked) == 6)
        assert asked[3] - asked[0] == step
        await pilot.press("r")  # asked for: fetched again
        await until(pilot, lambda: len(asked) == 9)
