"""Point-in-time universe membership as a boolean panel: which names were in on each date."""
import numpy as np
import pandas as pd


def membership_mask(intervals: pd.DataFrame, dates, *, by: str = "instrument_id") -> pd.DataFrame:
    """A dates x names boolean panel, True where the name was a member on that date.

    `intervals` has columns `by` (the name: an id or a key like 'XNYS:AAPL'), `start` and `end`
    (datetime64; start inclusive, end exclusive, NaT = still a member), one row per interval, as
    `marketdata.universes.member_intervals` returns. `dates` are the panel's dates (sorted, midnight).
    Columns are the distinct names in order of first appearance; a name with several intervals is True in
    each. Dates outside every interval are False, never NaN.
    """
    index = pd.DatetimeIndex(dates)
    column, names = pd.factorize(intervals[by], sort=False)
    days = index.to_numpy(dtype="datetime64[s]")
    starts = np.searchsorted(days, intervals["start"].to_numpy(dtype="datetime64[s]"), side="left")
    ends_at = intervals["end"].to_numpy(dtype="datetime64[s]")
    ends = np.where(np.isnat(ends_at), len(days), np.searchsorted(days, ends_at, side="left"))
    # +1 where an interval starts and -1 where it ends, summed down the dates: positive = inside one.
    steps = np.zeros((len(days) + 1, len(names)), dtype=np.int32)
    np.add.at(steps, (starts, column), 1)
    np.add.at(steps, (ends, column), -1)
    inside = np.cumsum(steps[:-1], axis=0) > 0
    return pd.DataFrame(inside, index=index, columns=pd.Index(names, name=by))
