"""Independent helpers for the strategy tests: a real slice of ../shared/marketdata and a plain-loop simulator.

The simulator is deliberately the naive one: a Python loop over bars and names, no arrays shared with
quant.backtest, so agreement between the two means something.
"""
import math

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import MARKETDATA

SP500 = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"


def real_panels(tickers, start, end):
    """Adjusted open/high/low/close and volume panels (dates x tickers) of the S&P 500 file."""
    if not SP500.exists():
        pytest.skip(f"{SP500} is not here")
    table = pq.read_table(SP500, filters=[("ticker", "in", list(tickers)),
                                          ("date", ">=", pd.Timestamp(start).date()),
                                          ("date", "<=", pd.Timestamp(end).date())])
    frame = table.to_pandas()
    frame["date"] = pd.to_datetime(frame["date"])
    frame["ticker"] = frame["ticker"].astype(str)
    factor = frame["adjusted_close"] / frame["close"]
    out = {}
    for name in ("open", "high", "low", "close"):
        values = frame[name] * factor
        out[name] = (frame.assign(v=values).pivot(index="date", columns="ticker", values="v")
                     .reindex(columns=list(tickers)))
    out["volume"] = frame.pivot(index="date", columns="ticker", values="volume").reindex(columns=list(tickers)).astype(float)
    assert pc.count(table["ticker"]).as_py() > 0
    return out


def simulate(targets, close, *, capital=1.0):
    """Naive loop: a target row dated on bar t is traded at bar t+1's close, fractional shares, no costs.

    NaN targets leave a name alone. Returns the end-of-bar equity as a list.
    """
    dates = list(close.index)
    names = list(close.columns)
    decisions = {d: targets.loc[d] for d in targets.index}
    shares = {n: 0.0 for n in names}
    last = {n: math.nan for n in names}
    cash = capital
    equity = []
    pending = None
    for d in dates:
        for n in names:
            price = close.at[d, n]
            if price == price and price > 0:
                last[n] = price
        if pending is not None:
            value = cash + sum(shares[n] * last[n] for n in names if shares[n])
            for n in names:
                w = pending.get(n, math.nan)
                price = close.at[d, n]
                if w == w and price == price and price > 0:
                    cash -= (w * value / price - shares[n]) * price
                    shares[n] = w * value / price
            pending = None
        equity.append(cash + sum(shares[n] * last[n] for n in names if shares[n]))
        if d in decisions:
            pending = decisions[d].to_dict()
    return equity
