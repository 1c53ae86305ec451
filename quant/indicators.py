"""Technical indicators on price series: pure functions, pandas in, pandas out."""
import numpy as np
import pandas as pd


def sma(series, window):
    """Simple moving average of the last `window` valid values, aligned with `series` (float64).

    NaN policy: the result is NaN until `window` valid values have been seen. Missing inputs (NaN) are
    skipped, never read as zero: an average always spans `window` real values, and a row whose own
    value is missing carries the average of the valid values before it.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    values = pd.Series(series, dtype="float64", copy=True)
    valid = values.notna().to_numpy()
    averages = values[valid].rolling(window, min_periods=window).mean().to_numpy()
    out = np.full(len(values), np.nan)
    out[valid] = averages
    # Forward-fill only moves a finished average onto the missing rows after it: during the warm-up
    # there is no finished average yet, so those rows stay NaN.
    return pd.Series(out, index=values.index, name=values.name).ffill()
