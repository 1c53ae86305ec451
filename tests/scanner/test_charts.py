"""Scanner figures on trace data: sparklines, the setup chart, the replay charts."""
import datetime as dt

import pandas as pd
import pytest

from marketdata.charts import bars_frame
from scanner import charts


def test_a_sparkline_scales_the_values_into_its_box():
    # Box 120 x 28, pad 2: x from 2 to 118 over 3 steps (38.67 each); y from 26 (the low, 10) to 2 (the high, 13).
    assert charts.sparkline_points([10, 11, 13, 12]) == "2.0,26.0 40.7,18.0 79.3,2.0 118.0,10.0"


def test_a_sparkline_skips_missing_values_and_needs_two():
    # The gap keeps its place on the x axis: x = 2, (59.99), 118.
    assert charts.sparkline_points([10, None, 20]) == "2.0,26.0 118.0,2.0"
    assert charts.sparkline_points([10, None]) == ""
    assert charts.sparkline_points([5, 5, 5]) == "2.0,26.0 60.0,26.0 118.0,26.0"  # flat: drawn at the bottom
    assert charts.sparkline_rising([10, None, 10]) and not charts.sparkline_rising([10, 9.9])


def bars(n=60):
    days = pd.bdate_range("2024-01-01", periods=n).date
    return bars_frame([(d, 10 + i, 10.5 + i, 9.5 + i, 10 + i, 1000, 1.0) for i, d in enumerate(days)])


def test_the_setup_chart_marks_the_session_the_high_and_the_window():
    frame = bars()
    as_of = dt.date(2024, 3, 1)  # the 45th business day: close 54
    fig = charts.setup_figure(frame, as_of=as_of, title="T", ma_windows=(10, 20, 50), high=54.5, high_window=20,
                              window_sessions=10)
    names = [t.name for t in fig.data]
    # The chart's own SMA 50 and 200 are not drawn twice; 10 and 20 are added.
    assert names.count("SMA 50") == 1 and "SMA 10" in names and "SMA 20" in names
    sma10 = next(t for t in fig.data if t.name == "SMA 10")
    assert list(sma10.y[9:11]) == [pytest.approx(14.5), pytest.approx(15.5)]  # mean of 10..19, of 11..20
    high = next(t for t in fig.data if t.name == "20-session high")
    # From the 20th session back (2024-02-05) to the scan's, at 54.5.
    assert list(high.x) == ["2024-02-05", "2024-03-01"] and list(high.y) == [54.5, 54.5]
    shapes = fig.layout.shapes
    # The last 10 sessions shaded on the price panel; the scan's session a line across price and volume.
    assert [(s.type, s.x0, s.x1, s.yref) for s in shapes] == [
        ("rect", "2024-02-19", "2024-03-01", "y domain"), ("line", "2024-03-01", "2024-03-01", "y domain"),
        ("line", "2024-03-01", "2024-03-01", "y2 domain")]
    assert fig.layout.annotations[-1].text == "scan 2024-03-01"


def test_the_replay_charts_show_percent_and_leave_missing_means_out():
    horizons = [{"sessions": 5, "hits": {"mean": 0.0125}, "universe": {"mean": 0.004}},
                {"sessions": 60, "hits": {"mean": None}, "universe": {"mean": -0.01}}]
    fig = charts.replay_figure(horizons)
    hits, universe = fig.data
    assert list(hits.x) == ["5 sessions", "60 sessions"]
    assert list(hits.y) == [1.25, None] and list(universe.y) == [0.4, -1.0]
    daily = charts.hits_per_day_figure([["2024-03-01", 2, 480], ["2024-03-04", 0, 481]])
    assert list(daily.data[0].y) == [2, 0]


def test_metrics_are_formatted_by_kind():
    from scanner.templatetags.scanner_tags import metric, pct, share  # scanner.formats.metric underneath

    assert [metric(0.1234, "pct"), metric(0.1234, "share"), metric(265e6, "money"), metric(1311.14, "price"),
            metric(0.0455, "price"), metric(0.69612, "ratio"), metric(90.06, "number"), metric(None, "pct")] == [
        "+12.34%", "12.34%", "265.0M", "1,311.14", "0.0455", "0.696", "90.1", "—"]
    assert (pct(-0.0027), share(0.5605), pct(None)) == ("-0.27%", "56.05%", "—")
