"""Reshaping daily bars: pure functions, pandas in, pandas out."""
import numpy as np
import pandas as pd

OHLCV = ("open", "high", "low", "close", "volume")


def weekly_bars(bars):
    """Daily bars as weekly bars, one per calendar week (Monday to Sunday) that has a bar.

    bars: DataFrame with columns date (datetime64), open, high, low, close, volume (float64, NaN =
    missing), sorted by date. A week's bar is dated by its last daily bar (a partial week, such as the
    current one or a holiday week, is dated by the last session it has) with open = the first valid
    open, high = max, low = min, close = the last valid close, volume = sum (NaN only when no day of
    the week has a volume), and `days`, the number of daily bars it holds (PITFALLS BR-10). Optional
    columns carry through: adj_factor (the last day's), flags (OR of the days'), quarantined (any day).
    """
    if not len(bars):
        return pd.DataFrame(columns=["date", *OHLCV, "days"])
    dates = pd.DatetimeIndex(bars["date"])
    week = dates.to_period("W-SUN")
    grouped = bars.assign(date=dates).groupby(week.to_numpy(), sort=True)
    out = grouped.agg(date=("date", "last"), open=("open", "first"), high=("high", "max"), low=("low", "min"),
                      close=("close", "last"), days=("date", "size"))
    out["volume"] = grouped["volume"].sum(min_count=1)
    extra = []
    if "adj_factor" in bars:
        out["adj_factor"] = grouped["adj_factor"].last()
        extra.append("adj_factor")
    if "flags" in bars:
        out["flags"] = grouped["flags"].agg(lambda f: int(np.bitwise_or.reduce(f.to_numpy(dtype=np.int64))))
        extra.append("flags")
    if "quarantined" in bars:
        out["quarantined"] = grouped["quarantined"].any()
        extra.append("quarantined")
    return out.reset_index(drop=True)[["date", *OHLCV, "days", *extra]]
