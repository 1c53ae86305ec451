"""Data-quality checks on daily bars: vectorised, pure, one bitmask of reasons per bar.

A bar's `flags` is the OR of the reasons below. Reasons in QUARANTINE_MASK are serious enough that the
bar is left out of analytics until someone reviews it; the others are shown but used.

Two kinds of check: `check_bars` judges each bar on its own (prices, OHLC, calendar); `check_series`
judges a bar against its instrument's neighbouring bars (jumps, stale runs, flips, a reused code) and
`session_gaps` lists the sessions an instrument has no bar for. What is wrong is quarantined (a
non-session date, no close, a unit flip, a reused code); what is only suspicious (an unexplained jump,
a stale run) is flagged and used.
"""
import numpy as np
import pandas as pd

from .flags import (  # noqa: F401 - re-exported: the reasons belong with the checks that set them
    ZERO_PRICE,
    OHLC_INCONSISTENT,
    NOT_A_SESSION,
    MISSING_CLOSE,
    NEGATIVE_VOLUME,
    JUMP,
    STALE,
    FLIP,
    SYMBOL_REUSED,
    FLAG_LABELS,
    QUARANTINE_MASK,
    SERIES_FLAGS,
    describe_flags,
)

# A move beyond x3 or below /3 close to close: no ordinary session does that, a consolidation or split does
# (the ASX file: GMG 2012-04-19 x5.2, IVV 2022-12-13 x0.066).
JUMP_RATIO = 3.0
# A jump undone by one the other way within this many bars, back to within x2 of where it started, is a
# flip (XAM 2011-2012: x100 unit errors lasting 1 to 24 bars).
FLIP_WINDOW = 30
FLIP_TOLERANCE = 2.0
# Consolidations keep the code trading within ~10 sessions; a new company on an old code comes back after
# years (WDS 1,707 missing sessions, HLS 561, NEM 3,470). A restructuring after a long suspension also
# matches (PDN 2018-02-16 after 174): the series is discontinuous either way.
REUSE_GAP = 120
# The same close on this many bars in a row with some bar traded nothing, or on STALE_RUN_TRADED bars
# whatever the volume (illiquid ASX small caps often trade at one tick for a week).
STALE_RUN = 5
STALE_RUN_TRADED = 10

PRICE_COLUMNS = ("open", "high", "low", "close")


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


def check_series(bars, *, explained=None, sessions=None):
    """Flag bars against their instrument's previous and following bars: JUMP, STALE, FLIP, SYMBOL_REUSED.

    bars: long DataFrame, one row per (key, date), any order: key (instrument: any hashable), date
    (datetime64, midnight), close (float64; NaN = missing, as check_bars leaves it), volume (float64 or
    nullable int; NaN = unknown) and optionally adj_factor (float64): a raw jump that the adjusted series
    does not show is taken as explained (a vendor's adjusted close knows the split). explained: DataFrame
    with columns key, date of corporate-action ex-dates (a jump on such a date is expected), or None.
    sessions: the calendar's sessions (DatetimeIndex, midnight) for counting the trading gap before a bar;
    None counts weekdays.

    A move is |log(close / previous close)| > log(JUMP_RATIO), the previous close being the last one not
    missing (PITFALLS BR-07: 10.20, NaN, 10.10 is -1%, not a jump). Each unexplained move is exactly one of:
    - FLIP: the next move of the instrument goes the other way within FLIP_WINDOW bars and lands within
      FLIP_TOLERANCE of the level before the first; every bar from the first move up to (not including)
      the move back is flagged (the excursion). Chained flips flag the whole stretch.
    - SYMBOL_REUSED: not a flip, and at least REUSE_GAP sessions passed without a bar before it.
    - JUMP: any other.
    STALE marks the repeats (not the first bar) of a run of consecutive bars with one close, when the run
    is at least STALE_RUN bars long and one of its repeats has zero or unknown volume, or at least
    STALE_RUN_TRADED bars long. Equal closes on bars that are not consecutive are never stale (a fund's
    NAV may repeat, PITFALLS BR-10).

    Returns an int64 ndarray of flags aligned with the rows of `bars` (only SERIES_FLAGS bits).
    """
    n = len(bars)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    codes, uniques = pd.factorize(bars["key"], sort=False)
    days = np.asarray(bars["date"], dtype="datetime64[D]")
    order = np.lexsort((days, codes))
    identity = bool((order == np.arange(n)).all())
    k = codes[order].astype(np.int64)
    d = days[order]
    close = bars["close"].to_numpy(dtype="float64", na_value=np.nan)[order]
    volume = pd.to_numeric(bars["volume"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)[order]
    factor = (bars["adj_factor"].to_numpy(dtype="float64", na_value=np.nan)[order]
              if "adj_factor" in bars else None)

    index = np.arange(n)
    first = np.ones(n, dtype=bool)
    first[1:] = k[1:] != k[:-1]
    group_start = np.maximum.accumulate(np.where(first, index, 0))

    # The last row before each row (same instrument) that has a close.
    valid = ~np.isnan(close)
    last_valid = np.maximum.accumulate(np.where(valid, index, -1))
    prev = np.empty(n, dtype=np.int64)
    prev[0] = -1
    prev[1:] = last_valid[:-1]
    has_prev = valid & (prev >= group_start)
    prev_safe = np.where(has_prev, prev, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        move = np.where(has_prev, np.log(close / close[prev_safe]), np.nan)
        big = np.abs(move) > np.log(JUMP_RATIO)
    # Explanations are looked up for the few big moves only, not for every bar.
    candidates = np.flatnonzero(big)
    if factor is not None and len(candidates):
        c, p = candidates, prev_safe[candidates]
        with np.errstate(divide="ignore", invalid="ignore"):
            adjusted = np.log(close[c] * factor[c] / (close[p] * factor[p]))
        big[c[np.abs(adjusted) <= np.log(JUMP_RATIO)]] = False
    if explained is not None and len(explained) and len(candidates):
        ex_codes = pd.Index(uniques).get_indexer(explained["key"])
        ex_days = np.asarray(explained["date"], dtype="datetime64[D]")
        known = ex_codes >= 0
        c = np.flatnonzero(big)
        hit = np.isin(_pair_day(k[c], d[c]), _pair_day(ex_codes[known].astype(np.int64), ex_days[known]))
        big[c[hit]] = False

    flags = np.zeros(n, dtype=np.int64)
    moves = np.flatnonzero(big)
    paired = np.zeros(n, dtype=bool)
    if len(moves) > 1:
        a, b = moves[:-1], moves[1:]
        undo = ((k[a] == k[b]) & (b - a <= FLIP_WINDOW) & (np.sign(move[a]) != np.sign(move[b]))
                & (np.abs(move[a] + move[b]) <= np.log(FLIP_TOLERANCE)))
        delta = np.zeros(n + 1, dtype=np.int64)
        np.add.at(delta, a[undo], 1)
        np.add.at(delta, b[undo], -1)
        flags |= np.where(np.cumsum(delta[:n]) > 0, FLIP, 0)
        paired[a[undo]] = True
        paired[b[undo]] = True
    single = big & ~paired
    gap = np.zeros(n, dtype=np.int64)
    before = np.flatnonzero(~first)
    if sessions is not None and len(sessions):
        position = np.asarray(sessions, dtype="datetime64[D]").searchsorted(d)
        gap[before] = position[before] - position[before - 1] - 1
    else:
        gap[before] = np.busday_count(d[before - 1] + 1, d[before])
    flags |= np.where(single & (gap >= REUSE_GAP), SYMBOL_REUSED, 0)
    flags |= np.where(single & (gap < REUSE_GAP), JUMP, 0)

    same = np.zeros(n, dtype=bool)
    same[1:] = ~first[1:] & (close[1:] == close[:-1])
    run = np.cumsum(~same)
    length = np.bincount(run)[run]
    idle = same & ~(volume > 0)
    has_idle = np.bincount(run, weights=idle)[run] > 0
    flags |= np.where(same & (((length >= STALE_RUN) & has_idle) | (length >= STALE_RUN_TRADED)), STALE, 0)

    if identity:
        return flags
    out = np.empty(n, dtype=np.int64)
    out[order] = flags
    return out


def _pair_day(codes, days):
    return (codes << 32) + days.astype(np.int64) + (1 << 31)


def session_gaps(bars, sessions):
    """The runs of sessions an instrument has no bar for, inside its own span (first to last bar).

    bars: DataFrame with columns key and date (datetime64, midnight), any order, one row per bar; rows
    dated off the calendar are ignored. sessions: the calendar's sessions (DatetimeIndex, midnight).
    Returns a DataFrame with one row per gap, ordered by key then start: key, start and end (the first
    and last missing session, datetime64) and sessions (how many are missing, int64). The ASX top-300
    file has 33,710 missing ticker-sessions in these gaps.
    """
    columns = ["key", "start", "end", "sessions"]
    calendar = np.asarray(sessions, dtype="datetime64[D]")
    if not len(bars) or not len(calendar):
        return pd.DataFrame({c: [] for c in columns})
    days = np.asarray(bars["date"], dtype="datetime64[D]")
    position = calendar.searchsorted(days)
    on = (position < len(calendar)) & (calendar[np.minimum(position, len(calendar) - 1)] == days)
    keys = bars["key"].to_numpy()[on]
    codes, uniques = pd.factorize(keys)
    position = position[on]
    order = np.lexsort((position, codes))
    codes, position = codes[order], position[order]
    follows = np.flatnonzero(codes[1:] == codes[:-1]) + 1
    missing = position[follows] - position[follows - 1] - 1
    at = follows[missing > 0]
    length = missing[missing > 0]
    return pd.DataFrame({
        "key": uniques.take(codes[at]) if len(at) else uniques[:0],
        "start": calendar[position[at - 1] + 1].astype("datetime64[ns]"),
        "end": calendar[position[at] - 1].astype("datetime64[ns]"),
        "sessions": length.astype(np.int64),
    }, columns=columns)


def missing_sessions(bars, sessions):
    """Every missing session of session_gaps, one row each: DataFrame with columns key, date (datetime64)."""
    gaps = session_gaps(bars, sessions)
    calendar = np.asarray(sessions, dtype="datetime64[D]")
    if not len(gaps):
        return pd.DataFrame({"key": [], "date": []})
    starts = calendar.searchsorted(np.asarray(gaps["start"], dtype="datetime64[D]"))
    length = gaps["sessions"].to_numpy()
    # Session positions start, start+1, ... for each gap, without a loop over gaps.
    offsets = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    return pd.DataFrame({"key": np.repeat(gaps["key"].to_numpy(), length),
                         "date": calendar[np.repeat(starts, length) + offsets].astype("datetime64[ns]")})


def sessions_in_span(first, last, sessions):
    """How many sessions lie in [first, last] for each pair (arrays of datetime64 dates); int64 ndarray."""
    calendar = np.asarray(sessions, dtype="datetime64[D]")
    first = np.asarray(first, dtype="datetime64[D]")
    last = np.asarray(last, dtype="datetime64[D]")
    return (calendar.searchsorted(last, side="right") - calendar.searchsorted(first, side="left")).astype(np.int64)
