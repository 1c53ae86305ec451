"""Back-adjustment for corporate actions: splits and cash dividends to multiplicative price factors.

The adjusted price of a bar is its raw price times its factor, where

    factor(bar) = product, over actions with ex_date AFTER the bar's date, of
                  (1 - dividend / previous close) / split ratio

and "previous close" is the raw close of the last bar before the ex-date. A split ratio is new shares
per old share (7 for a 7:1 split, 0.1 for a 1:10 consolidation); spin-off price adjustments are
fractional ratios (1.487). The latest bars have factor 1: adjusted prices are in today's terms, so an
adjusted return across a split or ex-date is the holder's total return.

Pure and vectorised: no loop over bars, one call handles many instruments at once.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Vendors print some ratios with rounding noise: 7.000007 for AAPL's 7:1, 1.49999925 for a 3:2.
SNAP_DENOMINATORS = np.arange(1, 21)
SNAP_TOLERANCE = 5e-6  # relative; spin-off ratios (1.487, 1.011, 0.303582) lie much further from p/q


@dataclass(frozen=True)
class Adjustment:
    """What adjustment_factors found.

    factor: float64 array aligned with the bars given (1.0 where no action follows a bar).
    skipped: the dividends that could not be converted into a factor, one row per action, with
    columns key, ex_date, amount, previous_close, reason; their split part, if any, still applies.
    """

    factor: np.ndarray
    skipped: pd.DataFrame


def snap_ratio(ratio):
    """Split ratios with vendor rounding noise snapped to the nearest simple fraction p/q (q <= 20).

    7.000007 -> 7.0, 1.49999925 -> 1.5, 0.333333 -> 1/3, 1.052632 -> 20/19; a ratio further than
    5e-6 (relative) from every such fraction is kept as given (1.487, 1.011). NaN stays NaN.
    """
    ratio = np.asarray(ratio, dtype="float64")
    out = ratio.copy()
    done = ~np.isfinite(ratio) | (ratio <= 0)
    # Smallest denominator first, so 2.0 stays 2/1 and is never re-read as 4/2.
    for q in SNAP_DENOMINATORS:
        candidate = np.round(ratio * q) / q
        with np.errstate(invalid="ignore", divide="ignore"):
            close = ~done & (candidate > 0) & (np.abs(candidate - ratio) <= SNAP_TOLERANCE * np.abs(ratio))
        out[close] = candidate[close]
        done |= close
    return out


def adjustment_factors(bars, actions):
    """Multiplicative back-adjustment factors of `bars` from `actions` (see the module docstring).

    bars: DataFrame with columns date (datetime64, midnight), close (float64 raw close, NaN = missing)
    and optionally key (the instrument: any sortable value; absent = one instrument). One row per
    (key, date), in any order.
    actions: DataFrame with columns ex_date (datetime64), ratio (float64 split ratio, NaN or 1 = no
    split), amount (float64 cash dividend per share, NaN or 0 = none) and key when bars have one. A
    row may carry both (a dividend and a split on the same ex-date multiply); several rows may share
    an ex-date. Ratios are used as given (see snap_ratio).

    A dividend whose previous close is missing (NaN), or not above the dividend, cannot be turned into
    a factor: it is left out and listed in `skipped`. An action on or before a key's first bar affects
    no bar and is never reported. Returns an Adjustment.
    """
    n = len(bars)
    days = np.asarray(bars["date"], dtype="datetime64[D]").astype(np.int64)
    close = np.asarray(bars["close"], dtype="float64")
    ex_days = np.asarray(actions["ex_date"], dtype="datetime64[D]").astype(np.int64)
    ratio = np.asarray(actions["ratio"], dtype="float64") if "ratio" in actions else np.ones(len(actions))
    amount = np.asarray(actions["amount"], dtype="float64") if "amount" in actions else np.zeros(len(actions))
    if "key" in bars:
        codes, uniques = pd.factorize(pd.concat([pd.Series(bars["key"]), pd.Series(actions["key"])],
                                                ignore_index=True), sort=True)
        bar_key, action_key = codes[:n].astype(np.int64), codes[n:].astype(np.int64)
    else:
        uniques = None
        bar_key, action_key = np.zeros(n, dtype=np.int64), np.zeros(len(actions), dtype=np.int64)

    # One sortable int64 per (key, day): key in the high bits, days since 1970 (offset) in the low.
    offset = 1 << 31
    bar_code = (bar_key << 32) + (days + offset)
    action_code = (action_key << 32) + (ex_days + offset)
    order = np.argsort(bar_code, kind="stable")
    bar_code, sorted_key, sorted_close = bar_code[order], bar_key[order], close[order]

    # The previous close: the last bar of the same key dated before the ex-date.
    before = np.searchsorted(bar_code, action_code, side="left") - 1
    has_before = before >= 0
    has_before[has_before] = sorted_key[before[has_before]] == action_key[has_before]
    previous = np.full(len(actions), np.nan)
    previous[has_before] = sorted_close[before[has_before]]

    pays = np.nan_to_num(amount, nan=0.0) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        dividend_factor = 1.0 - np.nan_to_num(amount, nan=0.0) / previous
    usable = ~pays | (np.isfinite(previous) & (dividend_factor > 0))
    dividend_factor = np.where(pays & usable, dividend_factor, 1.0)
    split = np.where(np.isnan(ratio), 1.0, ratio)
    per_action = dividend_factor / split

    # Suffix products of the per-action factors within each key, latest ex-date first.
    action_order = np.argsort(action_code, kind="stable")
    action_code_sorted = action_code[action_order]
    reversed_factors = pd.Series(per_action[action_order][::-1])
    suffix = reversed_factors.groupby(action_key[action_order][::-1]).cumprod().to_numpy()[::-1]

    # A bar takes the suffix product from the first action of its key dated after it.
    first_after = np.searchsorted(action_code_sorted, bar_code, side="right")
    factor_sorted = np.ones(n)
    inside = first_after < len(action_code_sorted)
    inside[inside] = (action_code_sorted[first_after[inside]] >> 32) == sorted_key[inside]
    factor_sorted[inside] = suffix[first_after[inside]]
    factor = np.empty(n)
    factor[order] = factor_sorted

    bad = pays & ~usable & has_before
    reasons = np.where(np.isnan(previous[bad]), "no close on the session before the ex-date",
                       "dividend not below the previous close")
    skipped = pd.DataFrame({
        "key": (uniques[action_key[bad]] if uniques is not None else np.zeros(int(bad.sum()), dtype=np.int64)),
        "ex_date": ex_days[bad].astype("datetime64[D]").astype("datetime64[s]"),
        "amount": amount[bad],
        "previous_close": previous[bad],
        "reason": reasons.astype(object),
    })
    return Adjustment(factor=factor, skipped=skipped)


def adjusted_close(bars, actions):
    """bars["close"] x adjustment_factors(bars, actions).factor, as a float64 Series on bars' index."""
    factor = adjustment_factors(bars, actions).factor
    return pd.Series(np.asarray(bars["close"], dtype="float64") * factor, index=bars.index, name="adj_close")
