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


def sma_frame(frame, window):
    """`sma` of every column of a dates x names DataFrame at once, with exactly sma's NaN policy.

    Each column's average spans its last `window` valid values; a missing row carries the average
    before it; NaN until `window` valid values have been seen. Vectorised over the whole frame: the
    valid values of each column are moved to the top (a stable sort keeps their order), averaged
    through a cumulative sum, and put back in their rows.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    frame = pd.DataFrame(frame)
    values = frame.to_numpy(dtype=np.float64, copy=True)
    if values.size == 0:
        return pd.DataFrame(values, index=frame.index, columns=frame.columns)
    valid = ~np.isnan(values)
    order = np.argsort(~valid, axis=0, kind="stable")
    packed = np.take_along_axis(values, order, axis=0)
    running = np.cumsum(np.nan_to_num(packed, nan=0.0), axis=0)
    averages = np.full(values.shape, np.nan)
    if window <= len(values):
        sums = running[window - 1:].copy()
        sums[1:] -= running[:-window]
        averages[window - 1:] = sums / window
    # Packed rows past a column's valid count hold no value.
    averages[np.arange(len(values))[:, None] >= valid.sum(axis=0)[None, :]] = np.nan
    out = np.empty_like(averages)
    np.put_along_axis(out, order, averages, axis=0)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns).ffill()
