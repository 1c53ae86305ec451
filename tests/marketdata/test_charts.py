"""Figure builders, tested on trace data, and the plotly.js bundle that draws them (BR-25)."""
import base64
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from marketdata.charts import bars_frame, figure_json, price_figure

PLOTLY_JS = Path(__file__).resolve().parents[2] / "static" / "vendor" / "plotly.min.js"


def decode(array):
    """A plotly JSON array as numpy: a plain list, or plotly 6+'s {"dtype", "bdata"} base64 form."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def traces(fig):
    """Trace dicts as a browser receives them (through figure_json)."""
    return json.loads(figure_json(fig))["data"]


def frame(rows, factor=1.0):
    return bars_frame([(d, o, h, lo, c, v, factor) for d, o, h, lo, c, v in rows])


AAPL_ROWS = [
    (dt.date(2024, 3, 7), 169.15, 170.73, 168.49, 169.00, 71_765_100),
    (dt.date(2024, 3, 8), 169.00, 173.70, 168.94, 170.73, 76_114_600),
]


def test_bundled_plotly_js_decodes_bdata_arrays():
    # plotly.py 6+ emits base64 "bdata" arrays; plotly.js reads them from 2.28 on, older versions draw nothing.
    header = PLOTLY_JS.read_text(encoding="utf-8", errors="replace")[:500]
    version = re.search(r"plotly\.js v(\d+)\.(\d+)\.(\d+)", header)
    assert version, "static/vendor/plotly.min.js has no 'plotly.js vX.Y.Z' header"
    assert tuple(int(part) for part in version.groups()[:2]) >= (2, 28)


def test_an_int_array_travels_as_i1_bdata_and_decodes_to_the_values():
    fig = go.Figure(go.Scatter(x=["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"], y=np.array([4, 12, 1, 9])))
    y = traces(fig)[0]["y"]
    # Bytes 04 0C 01 09 in base64 are "BAwBCQ==".
    assert y == {"dtype": "i1", "bdata": "BAwBCQ=="}
    assert decode(y).tolist() == [4, 12, 1, 9]


def test_a_float_close_series_travels_as_f8_bdata_and_decodes_exactly():
    fig = price_figure(frame([
        (dt.date(2024, 3, 7), 187.0, 188.0, 186.0, 187.44, 1_000),
        (dt.date(2024, 3, 8), 187.5, 189.0, 187.0, 188.10, 1_000),
    ]), adjusted=False, title="AAPL")
    close = traces(fig)[0]["close"]
    assert close == {"dtype": "f8", "bdata": "rkfhehRuZ0AzMzMzM4NnQA=="}
    assert decode(close).tolist() == [187.44, 188.10]


def test_the_candlestick_carries_dates_and_raw_ohlc():
    candle = traces(price_figure(frame(AAPL_ROWS), adjusted=False, title="AAPL"))[0]
    assert candle["type"] == "candlestick"
    assert candle["x"] == ["2024-03-07", "2024-03-08"]
    assert decode(candle["open"]).tolist() == [169.15, 169.00]
    assert decode(candle["high"]).tolist() == [170.73, 173.70]
    assert decode(candle["low"]).tolist() == [168.49, 168.94]
    assert decode(candle["close"]).tolist() == [169.00, 170.73]


def test_adjusted_prices_are_raw_times_the_factor():
    rows = [(d, o, h, lo, c, v, f) for (d, o, h, lo, c, v), f in zip(AAPL_ROWS, [0.25, 0.5])]
    candle, *_, volume = traces(price_figure(bars_frame(rows), adjusted=True, title="AAPL"))
    # 169.15 x 0.25 = 42.2875, 169.00 x 0.5 = 84.5; closes 169.00 x 0.25 = 42.25, 170.73 x 0.5 = 85.365
    np.testing.assert_allclose(decode(candle["open"]), [169.15 * 0.25, 169.00 * 0.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(decode(candle["close"]), [42.25, 85.365], rtol=0, atol=1e-12)
    np.testing.assert_allclose(decode(candle["high"]), [170.73 * 0.25, 173.70 * 0.5], rtol=0, atol=1e-12)
    # Volume is drawn as received in both modes.
    assert decode(volume["y"]).tolist() == [71_765_100, 76_114_600]


def test_moving_averages_are_of_the_plotted_close():
    # Closes 1, 2, ..., 52: SMA 50 is NaN for 49 bars, then mean(1..50) = 25.5, mean(2..51) = 26.5, mean(3..52) = 27.5.
    days = pd.bdate_range("2024-01-01", periods=52)
    rows = [(d.date(), c, c, c, c, 100, 2.0) for d, c in zip(days, range(1, 53))]
    data = traces(price_figure(bars_frame(rows), adjusted=False, title="T"))
    by_name = {trace.get("name"): trace for trace in data}
    sma50 = decode(by_name["SMA 50"]["y"])
    assert np.isnan(sma50[:49]).all()
    assert sma50[49:].tolist() == [25.5, 26.5, 27.5]
    assert np.isnan(decode(by_name["SMA 200"]["y"])).all()
    # Adjusted with factor 2 doubles the averages: 51, 53, 55.
    adjusted = {t.get("name"): t for t in traces(price_figure(bars_frame(rows), adjusted=True, title="T"))}
    assert decode(adjusted["SMA 50"]["y"])[49:].tolist() == [51.0, 53.0, 55.0]


def test_bars_before_visible_from_warm_up_the_averages_but_are_not_drawn():
    days = pd.bdate_range("2024-01-01", periods=52)
    rows = [(d.date(), c, c, c, c, 100, 1.0) for d, c in zip(days, range(1, 53))]
    data = traces(price_figure(bars_frame(rows), adjusted=False, title="T", visible_from=days[50].date()))
    candle = data[0]
    assert candle["x"] == [days[50].strftime("%Y-%m-%d"), days[51].strftime("%Y-%m-%d")]
    assert decode(candle["close"]).tolist() == [51.0, 52.0]
    # The 50-bar average on the first drawn day still spans closes 2..51: mean = 26.5.
    assert decode(data[1]["y"]).tolist() == [26.5, 27.5]


def test_missing_prices_are_gaps_not_zeros():
    rows = [(dt.date(2024, 3, 6), 10.0, 10.5, 9.5, 10.2, None, 1.0), (dt.date(2024, 3, 7), None, None, None, None, 50, 1.0)]
    candle, *_, volume = traces(price_figure(bars_frame(rows), adjusted=True, title="T"))
    assert np.isnan(decode(candle["close"])[1])
    assert np.isnan(decode(volume["y"])[0])


def test_an_empty_frame_gives_a_figure_that_says_so():
    fig = price_figure(bars_frame([]), adjusted=False, title="T")
    assert fig.layout.annotations[0].text == "No bars in this range"


def test_figure_json_cannot_close_its_script_element():
    text = figure_json(price_figure(frame(AAPL_ROWS), adjusted=False, title="</script><b>x & y</b>"))
    assert "</script>" not in text and "<b>" not in text and "&" not in text
    assert json.loads(text)["layout"]["title"]["text"] == "</script><b>x & y</b>"


@pytest.mark.parametrize("adjusted, label", [(False, "Price"), (True, "Price (adjusted)")])
def test_the_price_axis_says_which_prices_are_shown(adjusted, label):
    layout = json.loads(figure_json(price_figure(frame(AAPL_ROWS), adjusted=adjusted, title="T")))["layout"]
    assert layout["yaxis"]["title"]["text"] == label
    # Two rows: the price panel follows the volume panel's x axis, so zooming one zooms both.
    assert layout["xaxis"]["matches"] == "x2"
    assert layout["yaxis"]["domain"][0] > layout["yaxis2"]["domain"][1]


# --- corporate actions on the chart -------------------------------------------------------------

from marketdata.charts import action_label, actions_frame  # noqa: E402

# AAPL's raw bars around its 7:1 split, from the S&P 500 file.
SPLIT_ROWS = [
    (dt.date(2014, 6, 5), 646.20, 649.3699, 642.61, 647.35, 10_850_200),
    (dt.date(2014, 6, 6), 649.90, 651.26, 644.47, 645.57, 12_497_800),
    (dt.date(2014, 6, 9), 92.70, 93.88, 91.75, 93.70, 75_414_997),
]


def test_splits_and_dividends_are_marked_under_the_low_of_their_ex_date_bar():
    actions = actions_frame([(dt.date(2014, 6, 9), "split", 7.0, None), (dt.date(2014, 6, 6), "dividend", None, 3.29)])
    by_name = {t.get("name"): t for t in traces(price_figure(frame(SPLIT_ROWS), adjusted=False, title="AAPL",
                                                            actions=actions))}
    split, dividend = by_name["Splits"], by_name["Dividends"]
    assert split["x"] == ["2014-06-09"] and dividend["x"] == ["2014-06-06"]
    # 3% under the raw low: 91.75 x 0.97 = 88.9975, 644.47 x 0.97 = 625.1359.
    np.testing.assert_allclose(decode(split["y"]), [88.9975], rtol=1e-12)
    np.testing.assert_allclose(decode(dividend["y"]), [625.1359], rtol=1e-12)
    assert split["hovertext"] == ["Split 7:1 (ex 2014-06-09)"]
    assert dividend["hovertext"] == ["Dividend 3.29 (ex 2014-06-06)"]
    assert split["marker"]["symbol"] == "triangle-up"


def test_markers_follow_the_adjusted_prices_and_an_ex_date_without_a_bar_marks_the_next_one():
    rows = [(d, o, h, lo, c, v, f) for (d, o, h, lo, c, v), f in zip(SPLIT_ROWS, [1 / 7, 1 / 7, 1.0])]
    actions = actions_frame([(dt.date(2014, 6, 8), "split", 7.0, None)])  # a Sunday: drawn on Monday 06-09
    split = {t.get("name"): t for t in traces(price_figure(bars_frame(rows), adjusted=True, title="AAPL",
                                                           actions=actions))}["Splits"]
    assert split["x"] == ["2014-06-09"]
    np.testing.assert_allclose(decode(split["y"]), [91.75 * 0.97], rtol=1e-12)


def test_actions_outside_the_drawn_bars_are_not_marked_and_volume_stays_the_last_trace():
    actions = actions_frame([(dt.date(2014, 6, 1), "dividend", None, 3.29), (dt.date(2014, 6, 10), "split", 7.0, None)])
    data = traces(price_figure(frame(SPLIT_ROWS), adjusted=False, title="AAPL", actions=actions))
    assert [t.get("name") for t in data] == ["Price", "SMA 50", "SMA 200", "Volume"]


@pytest.mark.parametrize("kind, ratio, amount, label", [
    ("split", 7.0, None, "Split 7:1"), ("split", 1.5, None, "Split 3:2"), ("split", 0.05, None, "Consolidation 1:20"),
    ("split", 1.487, None, "Adjustment x1.487"), ("dividend", None, 0.205, "Dividend 0.205"),
])
def test_action_labels_read_as_a_trader_says_them(kind, ratio, amount, label):
    assert action_label(kind, ratio, amount) == label
