"""Plotly figures of a portfolio and a trade, built from pandas objects: no Django here.

Series go to plotly as numpy arrays; plotly.js (static/vendor, 2.x) decodes plotly 6+'s base64 arrays
(PITFALLS BR-25), so the figures carry exact float64 values.
"""
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from marketdata.charts import price_figure
from quant import metrics

PORTFOLIO, BENCHMARK, DRAWDOWN = "#127a57", "#8895a7", "#d6455d"
VOLATILITY, SHARPE = "#2f6fde", "#e08a1e"
ENTRY, EXIT = "#1a9e6f", "#d6455d"
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}


def _layout(fig, title, y_title, percent=None):
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        margin={"l": 56, "r": 16, "t": 48, "b": 32},
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "xanchor": "left", "font": {"size": 11}},
        hovermode="x unified", font=FONT,
        modebar={"remove": ["lasso2d", "select2d", "zoomIn2d", "zoomOut2d", "autoScale2d"]},
    )
    fig.update_yaxes(title_text=y_title, tickformat=percent)
    return fig


def growth_index(returns):
    """Growth of 1 from the inception: 1 before the first return, compounding each one (missing: held)."""
    return metrics.equity_curve(returns, initial=1.0)


def equity_figure(returns, *, benchmark=None, benchmark_name=None, title="Equity curve"):
    """The portfolio's time-weighted growth of 100 against a benchmark's, rebased to 100 on the first day.

    returns: daily time-weighted returns by date (NaN: unvalued day, held flat); benchmark: the
    benchmark's closes by date (adjusted), rebased to 100 at its close on the portfolio's first day.
    Deposits and withdrawals move neither line.
    """
    r = pd.Series(returns, dtype="float64")
    x = pd.DatetimeIndex(r.index).to_numpy(dtype="datetime64[D]")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=(growth_index(r) * 100).to_numpy(), mode="lines", name="Portfolio (TWR)",
                             line={"color": PORTFOLIO, "width": 2}))
    if benchmark is not None and len(benchmark):
        b = pd.Series(benchmark, dtype="float64").dropna()
        b = b[b > 0]
        aligned = b.reindex(b.index.union(r.index)).ffill().reindex(r.index)
        first = aligned.first_valid_index()
        if first is not None:
            fig.add_trace(go.Scatter(x=x, y=(aligned / aligned.loc[first] * 100).to_numpy(), mode="lines",
                                     name=benchmark_name or "Benchmark", line={"color": BENCHMARK, "width": 1.5}))
    return _layout(fig, title, "Growth of 100")


def drawdown_figure(returns, title="Drawdown"):
    """Drawdown from the high-water mark (which starts at the starting capital: PITFALLS BR-01)."""
    r = pd.Series(returns, dtype="float64")
    dd = metrics.drawdown(r.fillna(0.0)) if len(r) else pd.Series(dtype="float64")
    fig = go.Figure(go.Scatter(x=pd.DatetimeIndex(r.index).to_numpy(dtype="datetime64[D]"), y=dd.to_numpy(),
                               mode="lines", fill="tozeroy", name="Drawdown",
                               line={"color": DRAWDOWN, "width": 1.5}))
    return _layout(fig, title, "Drawdown", percent=".1%")


def risk_figure(volatility, sharpe, title="Rolling 21-day risk"):
    """Annualised rolling volatility (left axis) and Sharpe (right axis); empty until 21 returns exist."""
    v = pd.Series(volatility, dtype="float64")
    s = pd.Series(sharpe, dtype="float64").reindex(v.index)
    x = pd.DatetimeIndex(v.index).to_numpy(dtype="datetime64[D]")
    # Two y axes on one plot: a second axis overlaid, not make_subplots (a third of the build time).
    fig = go.Figure([
        go.Scatter(x=x, y=v.to_numpy(), mode="lines", name="Volatility (annualised)",
                   line={"color": VOLATILITY, "width": 1.5}),
        go.Scatter(x=x, y=s.to_numpy(), mode="lines", name="Sharpe (annualised)", yaxis="y2",
                   line={"color": SHARPE, "width": 1.5}),
    ])
    _layout(fig, title, "Volatility", percent=".0%")
    fig.update_layout(yaxis2={"title": {"text": "Sharpe"}, "overlaying": "y", "side": "right", "showgrid": False})
    if not np.isfinite(v.to_numpy()).any():
        fig.add_annotation(text="Needs 21 daily returns", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def trade_figure(bars, *, title, legs, visible_from=None):
    """The instrument's candles (marketdata.charts.price_figure, raw prices) with the trade's legs marked.

    legs: [(date, price, label, kind)] with kind "entry" or "exit"; each is a marker at its executed
    price on its date (entries green triangles up, exits red triangles down), hover naming the leg.
    """
    fig = price_figure(bars, adjusted=False, title=title, visible_from=visible_from)
    for kind, name, symbol, colour in (("entry", "Entry", "triangle-up", ENTRY), ("exit", "Exit", "triangle-down", EXIT)):
        picked = [leg for leg in legs if leg[3] == kind]
        if not picked:
            continue
        fig.add_trace(go.Scatter(
            x=np.array([leg[0] for leg in picked], dtype="datetime64[D]"),
            y=np.array([float(leg[1]) for leg in picked]), mode="markers", name=name,
            marker={"symbol": symbol, "size": 13, "color": colour, "line": {"width": 1, "color": "#14202e"}},
            hovertext=[leg[2] for leg in picked], hoverinfo="text"), row=1, col=1)
    return fig
