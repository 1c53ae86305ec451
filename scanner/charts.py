"""Scanner figures from plain data (no Django): sparklines as SVG points, the setup chart, replay charts."""
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from marketdata.charts import plotted_prices, price_figure
from quant.indicators import sma

SETUP_COLOUR = "#d6455d"
HIGH_COLOUR = "#7b3fc4"
WINDOW_FILL = "rgba(47, 111, 222, 0.08)"
SHORT_MA_COLOURS = {10: "#12a3a3", 20: "#9a5b00"}
HITS_COLOUR, UNIVERSE_COLOUR = "#127a57", "#98a2b3"


def sparkline_points(values, *, width=120, height=28, pad=2):
    """The `points` of an SVG polyline drawing `values` left to right, scaled to the box; '' when fewer
    than two values. Missing values (None, NaN) are skipped, so a gap joins its neighbours."""
    ys = np.array([np.nan if v is None else v for v in values], dtype=float)
    xs = np.arange(len(ys))
    keep = np.isfinite(ys)
    if keep.sum() < 2:
        return ""
    xs, ys = xs[keep], ys[keep]
    low, high = ys.min(), ys.max()
    span = high - low or 1.0
    px = pad + (width - 2 * pad) * xs / max(len(keep) - 1, 1)
    py = pad + (height - 2 * pad) * (1 - (ys - low) / span)
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(px, py))


def sparkline_rising(values):
    """True when the last value is at or above the first (the line is drawn green), False otherwise."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return len(finite) >= 2 and finite[-1] >= finite[0]


def setup_figure(bars, *, as_of, title, ma_windows=(), high=None, high_window=None, window_sessions=None):
    """The instrument's adjusted candles (marketdata.charts.price_figure) with the setup marked.

    bars: marketdata.charts.BAR_COLUMNS rows, sorted by date, from before the setup to after it. as_of:
    the scan's session, marked by a vertical line. ma_windows: moving averages drawn besides the chart's
    own 50/200 (e.g. 10 and 20). high: the level the close had to be near (e.g. the 126-session high),
    drawn as a horizontal line up to as_of. window_sessions: the last sessions up to as_of shaded (the
    recent range the tightening rule measured).
    """
    fig = price_figure(bars, adjusted=True, title=title)
    frame = bars.sort_values("date", kind="stable").reset_index(drop=True)
    closes = plotted_prices(frame, adjusted=True)["close"]
    x = frame["date"].to_numpy(dtype="datetime64[D]")
    for window in ma_windows:
        if window in (50, 200):
            continue  # price_figure draws these
        fig.add_trace(go.Scatter(x=x, y=sma(closes, window).to_numpy(), mode="lines", name=f"SMA {window}",
                                 line={"color": SHORT_MA_COLOURS.get(window, "#444"), "width": 1.2}), row=1, col=1)
    day = np.datetime64(pd.Timestamp(as_of).date(), "D")
    on_or_before = x[x <= day]
    if window_sessions and len(on_or_before):
        first = on_or_before[-min(window_sessions, len(on_or_before))]
        fig.add_vrect(x0=str(first), x1=str(day), fillcolor=WINDOW_FILL, line_width=0, layer="below", row=1, col=1)
    if high is not None and len(on_or_before):
        start = on_or_before[-min(high_window or len(on_or_before), len(on_or_before))]
        fig.add_trace(go.Scatter(x=[str(start), str(day)], y=[high, high], mode="lines",
                                 name=f"{high_window}-session high" if high_window else "High",
                                 line={"color": HIGH_COLOUR, "width": 1.5, "dash": "dash"}), row=1, col=1)
    fig.add_vline(x=str(day), line={"color": SETUP_COLOUR, "width": 1.5, "dash": "dot"})
    fig.add_annotation(x=str(day), y=1.0, yref="paper", text=f"scan {pd.Timestamp(as_of):%Y-%m-%d}",
                       showarrow=False, xanchor="left", yanchor="bottom", font={"color": SETUP_COLOUR, "size": 11})
    return fig


def replay_figure(horizons):
    """Mean forward return of the hits and of the universe per horizon (grouped bars, in %).

    horizons: the replay summary's list of {sessions, hits: {mean}, universe: {mean}}; a missing mean is
    left out of its bar group rather than drawn as 0.
    """
    labels = [f"{h['sessions']} sessions" for h in horizons]
    fig = go.Figure()
    for name, part, colour in (("Hits", "hits", HITS_COLOUR), ("Universe", "universe", UNIVERSE_COLOUR)):
        means = [h[part]["mean"] for h in horizons]
        fig.add_trace(go.Bar(x=labels, y=[None if m is None else m * 100 for m in means], name=name,
                             marker={"color": colour}, hovertemplate="%{y:.2f}%<extra>" + name + "</extra>"))
    fig.update_layout(template="plotly_white", barmode="group", margin={"l": 56, "r": 16, "t": 24, "b": 32},
                      yaxis={"title": {"text": "Mean forward return (%)"}, "zeroline": True},
                      legend={"orientation": "h", "x": 0, "y": 1.08})
    return fig


def hits_per_day_figure(daily):
    """Hits per session over the replay (bars): daily is [[date, hits, universe], ...]."""
    dates = [row[0] for row in daily]
    fig = go.Figure(go.Bar(x=dates, y=[row[1] for row in daily], name="Hits", marker={"color": HITS_COLOUR},
                           hovertemplate="%{x}: %{y} hits<extra></extra>"))
    fig.update_layout(template="plotly_white", margin={"l": 48, "r": 16, "t": 16, "b": 32}, bargap=0,
                      yaxis={"title": {"text": "New hits"}})
    return fig
