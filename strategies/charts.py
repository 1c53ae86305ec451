"""Plotly figures of backtests, built from DataFrames and Series: no Django here, so notebooks can use them too."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from quant import metrics

STRATEGY, BENCHMARK = "#2f6fde", "#8a8f98"
PALETTE = ["#2f6fde", "#e08a1e", "#1a9e6f", "#d6455d", "#7b3fc4", "#17a2b8", "#6c757d", "#b8860b"]
ROLLING_WINDOW = 126  # about six months of sessions: long enough to read, short enough to move
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}


def _layout(fig, title, *, y_title=None, percent=False):
    fig.update_layout(
        template="plotly_white", title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        margin={"l": 56, "r": 16, "t": 48, "b": 32}, hovermode="x unified", font=FONT,
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "xanchor": "left"},
        modebar={"remove": ["lasso2d", "select2d", "autoScale2d"]},
    )
    if y_title:
        fig.update_yaxes(title_text=y_title)
    if percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def _x(dates):
    return pd.DatetimeIndex(dates).to_numpy(dtype="datetime64[D]")


def equity_figure(dates, equity, benchmark=None, *, title="Equity"):
    """Strategy equity against the benchmark's, with Linear / Log buttons switching the y axis."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=_x(dates), y=np.asarray(equity, dtype="float64"), mode="lines", name="Strategy",
                             line={"color": STRATEGY, "width": 1.8}))
    if benchmark is not None:
        fig.add_trace(go.Scatter(x=_x(dates), y=np.asarray(benchmark, dtype="float64"), mode="lines",
                                 name="Benchmark (equal-weight buy and hold)", line={"color": BENCHMARK, "width": 1.4}))
    fig.update_layout(updatemenus=[{
        "type": "buttons", "direction": "right", "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom",
        "pad": {"b": 4},
        "showactive": True, "buttons": [
            {"label": "Linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
            {"label": "Log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
        ]}])
    _layout(fig, title, y_title="Equity")
    fig.update_layout(margin={"t": 76})  # room for the Linear / Log buttons under the mode bar
    return fig


def drawdown_figure(dates, returns, benchmark_returns=None, *, title="Drawdown"):
    """Drawdown from the high-water mark (metrics.drawdown: the mark starts at the capital)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=_x(dates), y=metrics.drawdown(pd.Series(returns)).to_numpy(), mode="lines",
                             name="Strategy", fill="tozeroy", line={"color": "#d6455d", "width": 1.2}))
    if benchmark_returns is not None:
        fig.add_trace(go.Scatter(x=_x(dates), y=metrics.drawdown(pd.Series(benchmark_returns)).to_numpy(),
                                 mode="lines", name="Benchmark", line={"color": BENCHMARK, "width": 1.0}))
    return _layout(fig, title, percent=True)


def monthly_heatmap(returns, *, title="Monthly returns"):
    """Years x months of compounded returns (metrics.monthly_table), each cell labelled in percent."""
    table = metrics.monthly_table(returns)
    months = table.reindex(columns=range(1, 13))
    z = months.to_numpy(dtype="float64")
    text = [[("" if np.isnan(v) else f"{v:+.1%}") for v in row] for row in z]
    limit = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.1
    fig = go.Figure(go.Heatmap(
        z=z, x=MONTHS, y=[str(y) for y in months.index], text=text, texttemplate="%{text}",
        colorscale="RdYlGn", zmid=0, zmin=-limit, zmax=limit, colorbar={"tickformat": ".0%"},
        hovertemplate="%{y} %{x}: %{text}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    return _layout(fig, title)


def rolling_sharpe_figure(dates, returns, *, window=ROLLING_WINDOW, title=None):
    """Annualised Sharpe over the last `window` sessions (metrics.rolling_sharpe)."""
    rolled = metrics.rolling_sharpe(pd.Series(np.asarray(returns, dtype="float64"), index=pd.DatetimeIndex(dates)),
                                    window=window)
    fig = go.Figure(go.Scatter(x=_x(dates), y=rolled.to_numpy(), mode="lines", name=f"Sharpe, {window} sessions",
                               line={"color": STRATEGY, "width": 1.2}))
    fig.add_hline(y=0, line={"color": "#999", "width": 1})
    return _layout(fig, title or f"Rolling Sharpe ({window} sessions)", y_title="Sharpe")


def compare_figure(curves: dict, *, title="Equity, each run starting at 1"):
    """Several runs' equity, each divided by its capital so they start at 1."""
    fig = go.Figure()
    for i, (label, series) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=_x(series.index), y=series.to_numpy(dtype="float64"), mode="lines", name=label,
                                 line={"color": PALETTE[i % len(PALETTE)], "width": 1.5}))
    fig.update_yaxes(type="log")
    return _layout(fig, title, y_title="Growth of 1 (log)")


def sweep_heatmap(x_name, x_values, y_name, y_values, z, *, title="Sharpe over the grid"):
    """A heatmap of a metric over two parameters: z[i][j] for y_values[i], x_values[j] (None = no result)."""
    values = np.array([[np.nan if v is None else v for v in row] for row in z], dtype="float64")
    text = [["skipped" if np.isnan(v) else f"{v:.2f}" for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values, x=[str(v) for v in x_values], y=[str(v) for v in y_values], text=text, texttemplate="%{text}",
        colorscale="RdYlGn", zmid=0, colorbar={"title": {"text": "Sharpe"}},
        hovertemplate=f"{x_name}=%{{x}}, {y_name}=%{{y}}: %{{text}}<extra></extra>",
    ))
    fig.update_xaxes(title_text=x_name, type="category")
    fig.update_yaxes(title_text=y_name, type="category")
    return _layout(fig, title)
