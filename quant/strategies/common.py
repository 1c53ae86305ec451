"""Helpers the strategies share: month-end decision bars, column lookup, panel moving averages."""
import numpy as np
import pandas as pd


def month_ends(dates: pd.DatetimeIndex) -> np.ndarray:
    """Positions of the last bar of each calendar month in `dates` (the month's final session)."""
    months = dates.year * 12 + dates.month
    last = np.flatnonzero(np.diff(months) != 0)
    return np.append(last, len(dates) - 1) if len(dates) else last


def find_column(columns, text: str) -> str:
    """The column meaning `text`: an exact key ('XNYS:AAPL') or a bare symbol ('AAPL') that is unique.

    Raises KeyError naming the problem.
    """
    text = (text or "").strip().upper()
    if text in columns:
        return text
    found = [c for c in columns if str(c).split(":", 1)[-1] == text]
    if len(found) == 1:
        return found[0]
    if not found:
        raise KeyError(f"{text!r} has no prices in this backtest")
    raise KeyError(f"{text!r} is listed on several exchanges; say which, e.g. {found[0]}")


def window_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` rows of each column of a float array (1-D or 2-D), from running sums.

    NaN until `window` rows exist and wherever one of the last `window` values is missing. The strategies
    and the vectorised sweep path both average this way, so they agree to the last bit.
    """
    values = np.asarray(values, dtype="float64")
    shape = values.shape
    values = values.reshape(len(values), -1)
    valid = ~np.isnan(values)
    zero = np.zeros((1, values.shape[1]))
    sums = np.concatenate([zero, np.cumsum(np.where(valid, values, 0.0), axis=0)])
    counts = np.concatenate([zero, np.cumsum(valid, axis=0)])
    out = np.full(values.shape, np.nan)
    if window <= len(values):
        full = counts[window:] - counts[:-window] == window
        out[window - 1:] = np.where(full, (sums[window:] - sums[:-window]) / window, np.nan)
    return out.reshape(shape)


def rolling_mean(frame: pd.DataFrame, window: int) -> pd.DataFrame:
    """Mean of the last `window` bars per column; NaN until `window` bars exist or when one is missing."""
    return pd.DataFrame(window_mean(frame.to_numpy(), window), index=frame.index, columns=frame.columns)


def trailing_return(close: pd.DataFrame, at: np.ndarray, bars_back: int) -> pd.DataFrame:
    """close[at] / close[at - bars_back] - 1 per column (NaN where either price is missing or at < bars_back)."""
    values = close.to_numpy(dtype="float64")
    now = values[at]
    then = np.full_like(now, np.nan)
    ok = at - bars_back >= 0
    then[ok] = values[at[ok] - bars_back]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(then > 0, now / then - 1.0, np.nan)
    return pd.DataFrame(out, index=close.index[at], columns=close.columns)
