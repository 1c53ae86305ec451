"""Data-quality checks on daily bars: vectorised, pure, one bitmask of reasons per bar.

A bar's `flags` is the OR of the reasons below. Reasons in QUARANTINE_MASK are serious enough that the
bar is left out of analytics until someone reviews it; the others are shown but used.
"""
import numpy as np
import pandas as pd

ZERO_PRICE = 1 << 0  # a price field was zero or negative; stored as missing
OHLC_INCONSISTENT = 1 << 1  # low above open/close, high below them, or low above high
NOT_A_SESSION = 1 << 2  # dated on a day the exchange was closed
MISSING_CLOSE = 1 << 3  # no usable close at all
NEGATIVE_VOLUME = 1 << 4  # volume below zero; stored as missing

FLAG_LABELS = {
    ZERO_PRICE: "zero or negative price (stored as missing)",
    OHLC_INCONSISTENT: "OHLC inconsistent (low/high do not bound open/close)",
    NOT_A_SESSION: "date is not a session of the exchange",
    MISSING_CLOSE: "no close price",
    NEGATIVE_VOLUME: "negative volume (stored as missing)",
}
QUARANTINE_MASK = NOT_A_SESSION | MISSING_CLOSE

PRICE_COLUMNS = ("open", "high", "low", "close")


def describe_flags(flags):
    """The reasons a bitmask carries, in a fixed order: 5 -> ['zero or negative price ...', 'date is not ...']."""
    return [label for bit, label in FLAG_LABELS.items() if flags & bit]


def check_bars(bars, sessions=None):
    """Clean and flag one exchange's bars in place of a copy.

    bars: DataFrame with columns date (datetime64, midnight), open, high, low, close (float64) and
    volume (float64 or nullable int). sessions: the exchange's session dates (DatetimeIndex,
    midnight) or None to skip the calendar check; dates before the first of them are not checked.

    Returns a copy where zero/negative prices and negative volumes are NaN, with int64 column
    `flags` and bool column `quarantined`. Rows are never dropped or reordered.
    """
    out = bars.copy()
    flags = np.zeros(len(out), dtype=np.int64)

    prices = out.loc[:, list(PRICE_COLUMNS)].to_numpy(dtype="float64", na_value=np.nan)
    nonpositive = prices <= 0
    flags |= np.where(nonpositive.any(axis=1), ZERO_PRICE, 0)
    prices = np.where(nonpositive, np.nan, prices)
    for i, column in enumerate(PRICE_COLUMNS):
        # Whole-column assignment, so integer prices become float64 instead of refusing NaN.
        out[column] = prices[:, i]

    o, h, lo, c = prices.T
    with np.errstate(invalid="ignore"):
        # NaN comparisons are False, so a missing field never makes a bar inconsistent by itself.
        bad = (lo > h) | (lo > o) | (lo > c) | (h < o) | (h < c)
    flags |= np.where(bad, OHLC_INCONSISTENT, 0)
    flags |= np.where(np.isnan(c), MISSING_CLOSE, 0)

    volume = pd.to_numeric(out["volume"], errors="coerce").astype("Float64")
    negative = (volume < 0).fillna(False).to_numpy(dtype=bool)
    flags |= np.where(negative, NEGATIVE_VOLUME, 0)
    out["volume"] = volume.mask(negative).astype("Int64") if len(volume) else volume.astype("Int64")

    if sessions is not None and len(sessions):
        # A calendar only knows the sessions it was built for: older dates cannot be judged.
        dates = out["date"]
        off = ~dates.isin(sessions) & (dates >= sessions.min())
        flags |= np.where(off.to_numpy(dtype=bool), NOT_A_SESSION, 0)

    out["flags"] = flags
    out["quarantined"] = (flags & QUARANTINE_MASK) != 0
    return out
