"""Plotly figures of market data, built from DataFrames: no Django here, so notebooks can use them too."""
from fractions import Fraction

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from quant.indicators import sma

# The columns price_figure reads, in the order views fetch them with values_list.
BAR_COLUMNS = ("date", "open", "high", "low", "close", "volume", "adj_factor")
PRICE_COLUMNS = ("open", "high", "low", "close")
# The corporate-action columns price_figure reads (CorporateAction fields).
ACTION_COLUMNS = ("ex_date", "kind", "ratio", "amount")
MOVING_AVERAGES = (50, 200)

UP, DOWN = "#1a9e6f", "#d6455d"
SPLIT_COLOUR, DIVIDEND_COLOUR = "#7b3fc4", "#2f6fde"
MARKER_BELOW_LOW = 0.97  # markers sit just under the ex-date bar's low, clear of the candle
MA_COLOURS = {50: "#2f6fde", 200: "#e08a1e"}


def bars_frame(rows):
    """A DataFrame of BAR_COLUMNS from (date, open, high, low, close, volume, adj_factor) tuples.

    Dates become datetime64 (midnight), prices, volume and factor float64; a missing value is NaN.
    """
    frame = pd.DataFrame.from_records(list(rows), columns=list(BAR_COLUMNS))
    frame["date"] = pd.to_datetime(frame["date"])
    for column in BAR_COLUMNS[1:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def actions_frame(rows):
    """A DataFrame of ACTION_COLUMNS from (ex_date, kind, ratio, amount) tuples; ratio and amount float64."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(ACTION_COLUMNS))
    frame["ex_date"] = pd.to_datetime(frame["ex_date"])
    for column in ("ratio", "amount"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def action_label(kind, ratio=None, amount=None):
    """'Split 7:1', 'Consolidation 1:20', 'Adjustment x1.487' (a spin-off) or 'Dividend 0.47'."""
    if kind == "dividend":
        return f"Dividend {amount:.6g}"
    simple = Fraction(ratio).limit_denominator(20)
    if abs(float(simple) - ratio) > 1e-9 * ratio:
        return f"Adjustment x{ratio:.6g}"
    return f"{'Split' if ratio > 1 else 'Consolidation'} {simple.numerator}:{simple.denominator}"


def plotted_prices(bars, *, adjusted):
    """OHLC as plotted: raw, or raw x adj_factor when `adjusted`."""
    prices = bars.loc[:, list(PRICE_COLUMNS)].astype("float64")
    if adjusted:
        prices = prices.mul(bars["adj_factor"].astype("float64"), axis=0)
    return prices


def price_figure(bars, *, adjusted, title, visible_from=None, actions=None):
    """Candlesticks with 50/200-bar moving averages of the close over a volume panel (shared x axis).

    bars: DataFrame with BAR_COLUMNS, one row per session, sorted by date. Rows dated before
    `visible_from` only warm up the moving averages and are not drawn. Volume is plotted as received.
    actions: optional DataFrame with ACTION_COLUMNS; splits and dividends whose ex-date falls on a drawn
    bar (or between drawn bars: the next one) are marked under that bar's low.
    """
    bars = bars.sort_values("date", kind="stable").reset_index(drop=True)
    prices = plotted_prices(bars, adjusted=adjusted)
    averages = {window: sma(prices["close"], window) for window in MOVING_AVERAGES}

    shown = np.ones(len(bars), dtype=bool)
    if visible_from is not None:
        shown = (bars["date"] >= pd.Timestamp(visible_from)).to_numpy()
    x = bars["date"].to_numpy(dtype="datetime64[D]")[shown]
    prices = prices[shown]

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.76, 0.24], vertical_spacing=0.03)
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=prices["open"].to_numpy(),
            high=prices["high"].to_numpy(),
            low=prices["low"].to_numpy(),
            close=prices["close"].to_numpy(),
            name="Price",
            increasing={"line": {"color": UP}, "fillcolor": UP},
            decreasing={"line": {"color": DOWN}, "fillcolor": DOWN},
        ),
        row=1, col=1,
    )
    for window, series in averages.items():
        fig.add_trace(
            go.Scatter(
                x=x, y=series.to_numpy()[shown], mode="lines", name=f"SMA {window}",
                line={"color": MA_COLOURS[window], "width": 1.5},
            ),
            row=1, col=1,
        )
    if actions is not None and len(actions) and len(x):
        _add_action_markers(fig, actions, x, prices["low"].to_numpy(), prices["close"].to_numpy())
    rising = (prices["close"] >= prices["open"]).to_numpy()
    fig.add_trace(
        go.Bar(
            x=x, y=bars["volume"].to_numpy()[shown], name="Volume",
            marker={"color": np.where(rising, UP, DOWN).tolist(), "line": {"width": 0}},
            opacity=0.7, showlegend=False,
        ),
        row=2, col=1,
    )
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        margin={"l": 56, "r": 16, "t": 48, "b": 32},
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "xanchor": "left", "font": {"size": 11}},
        hovermode="x unified",
        bargap=0.1,
        xaxis_rangeslider_visible=False,
        # A short modebar leaves room for the title on a phone-width chart.
        modebar={"remove": ["lasso2d", "select2d", "zoomIn2d", "zoomOut2d", "autoScale2d"]},
        font={"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12},
    )
    fig.update_yaxes(title_text="Price (adjusted)" if adjusted else "Price", row=1, col=1)
    fig.update_yaxes(title_text="Volume", row=2, col=1)
    if not len(x):
        fig.add_annotation(text="No bars in this range", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.6)
    return fig


def _add_action_markers(fig, actions, x, low, close):
    """One marker trace for splits and one for dividends, at the first drawn bar on or after each ex-date."""
    ex = actions["ex_date"].to_numpy(dtype="datetime64[D]")
    at = np.searchsorted(x, ex, side="left")
    shown = (at < len(x)) & (ex >= x[0])
    base = np.where(np.isnan(low), close, low)
    for kind, name, symbol, colour in (("split", "Splits", "triangle-up", SPLIT_COLOUR),
                                       ("dividend", "Dividends", "circle", DIVIDEND_COLOUR)):
        rows = shown & (actions["kind"] == kind).to_numpy()
        if not rows.any():
            continue
        picked = actions[rows]
        labels = [f"{action_label(kind, r, a)} (ex {d:%Y-%m-%d})"
                  for d, r, a in zip(picked["ex_date"], picked["ratio"], picked["amount"])]
        fig.add_trace(
            go.Scatter(
                x=x[at[rows]], y=base[at[rows]] * MARKER_BELOW_LOW, mode="markers", name=name,
                marker={"symbol": symbol, "size": 10 if kind == "split" else 7, "color": colour,
                        "line": {"width": 1, "color": "#ffffff"}},
                hovertext=labels, hoverinfo="text",
            ),
            row=1, col=1,
        )


def figure_json(fig):
    """The figure as JSON that is safe inside a <script type="application/json"> element."""
    # Titles carry provider-supplied names; escaping <, > and & keeps "</script>" from ending the element.
    return fig.to_json().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
