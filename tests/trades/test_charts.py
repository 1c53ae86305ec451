"""The portfolio and trade figures, tested on the trace data a browser receives (Django-free builders)."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.marketdata.test_charts import decode, frame, traces
from trades import charts


def series(values, start="2024-01-02"):
    return pd.Series(values, index=pd.bdate_range(start, periods=len(values)), dtype="float64")


def test_the_equity_curve_is_the_growth_of_100_against_the_rebased_benchmark():
    fig = charts.equity_figure(series([0.10, -0.50, np.nan, 0.20]), benchmark=series([4000.0, 4400, 4200, 3800]),
                               benchmark_name="XNYS:SPX")
    portfolio, benchmark = traces(fig)
    # 100 x 1.1 = 110; x 0.5 = 55; an unvalued day holds 55; x 1.2 = 66.
    assert decode(portfolio["y"]).tolist() == pytest.approx([110, 55, 55, 66])
    # Rebased to 100 on the first day: 4400 / 4000 x 100 = 110, 105, 95.
    assert decode(benchmark["y"]).tolist() == pytest.approx([100, 110, 105, 95])
    assert benchmark["name"] == "XNYS:SPX"


def test_the_benchmark_is_aligned_to_the_books_days():
    # The benchmark misses the second day: its last close carries; it has an extra day outside the book.
    bench = pd.Series([200.0, 210, 250], index=pd.to_datetime(["2024-01-02", "2024-01-04", "2024-01-09"]))
    fig = charts.equity_figure(series([0.0, 0.0, 0.0]), benchmark=bench)
    assert decode(traces(fig)[1]["y"]).tolist() == pytest.approx([100, 100, 105])


def test_the_drawdown_starts_from_the_starting_capital():
    # PITFALLS BR-01: -10% on the first day is a -10% drawdown; the low is 0.75 / 1.00 - 1 = -25%.
    fig = charts.drawdown_figure(series([-0.10, -0.111111111, -0.0625, 0.04, 0.0512820513]))
    assert decode(traces(fig)[0]["y"]).tolist() == pytest.approx([-0.10, -0.20, -0.25, -0.22, -0.18], abs=1e-9)


def test_the_risk_chart_says_when_there_are_too_few_returns():
    empty = charts.risk_figure(series([np.nan] * 3), series([np.nan] * 3))
    assert empty.layout.annotations[0].text == "Needs 21 daily returns"
    full = charts.risk_figure(series([0.12, 0.15]), series([1.1, 0.9]))
    vol, sharpe = traces(full)
    assert decode(vol["y"]).tolist() == [0.12, 0.15] and decode(sharpe["y"]).tolist() == [1.1, 0.9]
    assert sharpe["yaxis"] == "y2"


def test_the_trade_chart_marks_each_leg_at_its_price():
    bars = frame([(dt.date(2024, 3, 7), 169.15, 170.73, 168.49, 169.00, 1), (dt.date(2024, 3, 8), 169.0, 173.7, 168.94,
                                                                            170.73, 1)])
    fig = charts.trade_figure(bars, title="AAPL", legs=[(dt.date(2024, 3, 7), 169.5, "Long entry", "entry"),
                                                       (dt.date(2024, 3, 8), 172.0, "Exit", "exit")])
    by_name = {t["name"]: t for t in traces(fig)}
    assert by_name["Entry"]["x"] == ["2024-03-07"] and decode(by_name["Entry"]["y"]).tolist() == [169.5]
    assert by_name["Exit"]["marker"]["symbol"] == "triangle-down" and decode(by_name["Exit"]["y"]).tolist() == [172.0]
    assert by_name["Price"]["type"] == "candlestick"
