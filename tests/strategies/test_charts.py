"""Backtest figures on trace data: what a browser receives through figure_json."""
import json

import numpy as np
import pandas as pd
import pytest

from marketdata.charts import figure_json
from strategies import charts
from tests.marketdata.test_charts import decode


def traces(fig):
    return json.loads(figure_json(fig))["data"]


DAYS = pd.bdate_range("2024-01-02", periods=5)
BR01 = [-0.10, -0.111111111111, -0.0625, 0.04, 0.0512820512821]


def test_equity_has_the_strategy_the_benchmark_and_a_log_toggle():
    fig = charts.equity_figure(DAYS, [100, 90, 80, 75, 78], [100, 101, 102, 103, 104])
    data = traces(fig)
    assert [t["name"] for t in data] == ["Strategy", "Benchmark (equal-weight buy and hold)"]
    np.testing.assert_allclose(decode(data[0]["y"]), [100, 90, 80, 75, 78])
    buttons = json.loads(figure_json(fig))["layout"]["updatemenus"][0]["buttons"]
    assert [(b["label"], b["args"][0]) for b in buttons] == [("Linear", {"yaxis.type": "linear"}),
                                                             ("Log", {"yaxis.type": "log"})]


def test_drawdown_starts_its_high_water_mark_at_the_capital():
    # PITFALLS BR-01: equity 0.90, 0.80, 0.75, 0.78, 0.82 from 1.00 -> -10%, -20%, -25%, -22%, -18%.
    [strategy] = traces(charts.drawdown_figure(DAYS, BR01))
    np.testing.assert_allclose(decode(strategy["y"]), [-0.10, -0.20, -0.25, -0.22, -0.18], atol=1e-9)


def test_the_monthly_heatmap_compounds_each_month():
    # Jan: 1.01 x 1.02 - 1 = 3.02%; Feb: -1%; other months empty.
    r = pd.Series([0.01, 0.02, -0.01], index=pd.to_datetime(["2024-01-02", "2024-01-31", "2024-02-01"]))
    [heat] = traces(charts.monthly_heatmap(r))
    z = decode(heat["z"]).reshape(1, 12) if isinstance(heat["z"], dict) else np.asarray(heat["z"], dtype=float)
    assert z[0][0] == pytest.approx(0.0302) and z[0][1] == pytest.approx(-0.01)
    assert np.isnan(z[0][2])
    assert heat["text"][0][:3] == ["+3.0%", "-1.0%", ""]
    assert heat["y"] == ["2024"]


def test_the_rolling_sharpe_is_empty_until_the_window_fills():
    r = np.tile([0.01, -0.005, 0.007], 50)
    days = pd.bdate_range("2024-01-02", periods=len(r))
    [line] = traces(charts.rolling_sharpe_figure(days, r, window=126))
    y = decode(line["y"]).astype(float)
    assert np.isnan(y[:125]).all() and np.isfinite(y[125:]).all()


def test_the_sweep_heatmap_marks_skipped_sets():
    [heat] = traces(charts.sweep_heatmap("fast", [10, 20], "slow", [50, 100], [[1.2, None], [0.4, -0.3]]))
    assert heat["x"] == ["10", "20"] and heat["y"] == ["50", "100"]
    assert heat["text"] == [["1.20", "skipped"], ["0.40", "-0.30"]]


def test_compare_divides_by_the_capital_and_uses_a_log_axis():
    curves = {"#1 momentum": pd.Series([1.0, 1.1], index=DAYS[:2]), "#2 olmar": pd.Series([1.0, 0.9], index=DAYS[:2])}
    fig = json.loads(figure_json(charts.compare_figure(curves)))
    assert [t["name"] for t in fig["data"]] == ["#1 momentum", "#2 olmar"]
    assert fig["layout"]["yaxis"]["type"] == "log"
