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
    valid values of each column are moved to the top in their order, averaged through a cumulative
    sum, and put back in their rows.
    """
    return sma_frames(frame, [window])[window]


def sma_frames(frame, windows):
    """{window: sma_frame(frame, window)} for several windows, packing the valid values only once."""
    for window in windows:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
    frame = pd.DataFrame(frame)
    values = frame.to_numpy(dtype=np.float64, copy=True)
    if values.size == 0:
        return {w: pd.DataFrame(values, index=frame.index, columns=frame.columns) for w in windows}
    valid = ~np.isnan(values)
    # Where each row goes when a column's valid values are moved to the top in order (a stable partition,
    # from two running counts instead of a sort).
    counts = valid.sum(axis=0)
    target = np.where(valid, np.cumsum(valid, axis=0) - 1, counts + np.cumsum(~valid, axis=0) - 1)
    packed = np.empty_like(values)
    np.put_along_axis(packed, target, values, axis=0)
    running = np.cumsum(np.nan_to_num(packed, nan=0.0), axis=0)
    # Packed rows past a column's valid count hold no value.
    beyond = np.arange(len(values))[:, None] >= counts[None, :]
    out = {}
    for window in windows:
        averages = np.full(values.shape, np.nan)
        if window <= len(values):
            sums = running[window - 1:].copy()
            sums[1:] -= running[:-window]
            averages[window - 1:] = sums / window
        averages[beyond] = np.nan
        placed = np.take_along_axis(averages, target, axis=0)
        out[window] = pd.DataFrame(placed, index=frame.index, columns=frame.columns).ffill()
    return out


def rolling_max(frame, window):
    """The highest value of each column over the last `window` rows, the row itself included.

    Missing values are skipped; NaN only where the window holds no value (pandas'
    `rolling(window, min_periods=1).max()`). Vectorised over the whole frame (van Herk / Gil-Werman:
    running maxima inside blocks of `window` rows, forwards and backwards, then one max per row).
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    frame = pd.DataFrame(frame)
    values = frame.to_numpy(dtype=np.float64)
    n = len(values)
    if n == 0 or window == 1:
        return pd.DataFrame(values.copy(), index=frame.index, columns=frame.columns)
    blocks = -(-n // window)
    padded = np.full((blocks * window, values.shape[1]), np.nan)
    padded[:n] = values
    shaped = padded.reshape(blocks, window, -1)
    forward = np.fmax.accumulate(shaped, axis=1).reshape(-1, values.shape[1])
    backward = np.fmax.accumulate(shaped[:, ::-1], axis=1)[:, ::-1].reshape(-1, values.shape[1])
    out = forward[:n].copy()
    # Row i's window [i - window + 1, i] spans the end of one block (backward) and the start of the next (forward).
    start = np.arange(window - 1, n)
    out[window - 1:] = np.fmax(backward[start - window + 1], forward[start])
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)
