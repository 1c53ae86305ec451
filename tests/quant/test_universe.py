"""quant.universe.membership_mask: intervals (start inclusive, end exclusive) to a boolean panel."""
import numpy as np
import pandas as pd

from quant.universe import membership_mask


def intervals(*rows):
    key, start, end = zip(*rows)
    return pd.DataFrame({"key": list(key), "start": pd.to_datetime(list(start)).astype("datetime64[s]"),
                         "end": pd.to_datetime(list(end)).astype("datetime64[s]")})


def test_a_name_is_in_from_its_start_until_the_day_before_its_end():
    mask = membership_mask(intervals(("A", "2024-01-02", "2024-01-04")), pd.date_range("2024-01-01", "2024-01-05"),
                           by="key")

    # In on the 2nd and 3rd; the 4th is the end (exclusive).
    assert mask["A"].tolist() == [False, True, True, False, False]


def test_two_intervals_of_one_name_and_an_open_end():
    # AAL-like: in, out, back in and still a member.
    mask = membership_mask(intervals(("A", "2024-01-02", "2024-01-03"), ("A", "2024-01-05", None),
                                     ("B", "2024-01-01", None)), pd.date_range("2024-01-01", "2024-01-06"), by="key")

    assert list(mask.columns) == ["A", "B"]
    assert mask["A"].tolist() == [False, True, False, False, True, True]
    assert mask["B"].all()
    assert mask.dtypes.tolist() == [np.dtype(bool), np.dtype(bool)]


def test_intervals_outside_the_dates_leave_the_name_out():
    mask = membership_mask(intervals(("A", "2020-01-02", "2020-02-01"), ("B", "2030-01-02", None)),
                           pd.date_range("2024-01-01", "2024-01-03"), by="key")

    assert not mask.to_numpy().any()
    assert mask.shape == (3, 2)
