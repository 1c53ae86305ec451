"""quant.quality.check_bars: flags, NULLing of bad values, and the calendar check. No database."""
import numpy as np
import pandas as pd
import pytest

from quant.quality import (
    MISSING_CLOSE, NEGATIVE_VOLUME, NOT_A_SESSION, OHLC_INCONSISTENT, ZERO_PRICE, check_bars, describe_flags,
)


def bars(rows):
    """rows: (date, open, high, low, close, volume)."""
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def test_br07_a_zero_close_becomes_missing_and_is_quarantined():
    """BR-07: closes 10.00, 10.20, 0.00, 10.10, 10.30 (2024-03-04..08); the zero is never a price."""
    closes = [10.00, 10.20, 0.00, 10.10, 10.30]
    frame = bars([(f"2024-03-{4 + i:02d}", c, c, c, c, 100) for i, c in enumerate(closes)])

    out = check_bars(frame)

    assert out["close"].isna().tolist() == [False, False, True, False, False]
    assert out["flags"].tolist() == [0, 0, ZERO_PRICE | MISSING_CLOSE, 0, 0]
    assert out["quarantined"].tolist() == [False, False, True, False, False]
    # Returns over valid prices only: 10.10 / 10.20 - 1 = -0.980% (pct_change without filling).
    returns = out["close"].dropna().pct_change()
    assert returns.iloc[2] == pytest.approx(-0.0098039, abs=1e-7)
    assert np.isfinite(returns.dropna()).all()


def test_zero_open_high_low_with_a_real_close_is_flagged_but_usable():
    """ASX ANZ 2022-07-18 arrived as open = high = low = 0, close 21.64."""
    out = check_bars(bars([("2022-07-18", 0.0, 0.0, 0.0, 21.64, 4000)]))

    assert out.loc[0, ["open", "high", "low"]].isna().all()
    assert out.loc[0, "close"] == 21.64
    assert out.loc[0, "flags"] == ZERO_PRICE  # NaN fields alone never make a bar inconsistent
    assert not out.loc[0, "quarantined"]


def test_it_flags_ohlc_that_do_not_bound_each_other_without_quarantine():
    out = check_bars(bars([
        ("2024-03-04", 10.0, 11.0, 9.0, 10.5, 1),   # fine
        ("2024-03-05", 10.0, 11.0, 10.6, 10.5, 1),  # low 10.6 above close 10.5
        ("2024-03-06", 12.0, 11.0, 9.0, 10.5, 1),   # open 12 above high 11
    ]))

    assert out["flags"].tolist() == [0, OHLC_INCONSISTENT, OHLC_INCONSISTENT]
    assert not out["quarantined"].any()


def test_a_negative_volume_becomes_missing_and_flagged():
    out = check_bars(bars([("2024-03-04", 1, 1, 1, 1, -5), ("2024-03-05", 1, 1, 1, 1, 0)]))

    assert out["volume"].isna().tolist() == [True, False]
    assert out["volume"].iloc[1] == 0
    assert out["flags"].tolist() == [NEGATIVE_VOLUME, 0]


def test_a_saturday_is_not_a_session_and_is_quarantined():
    """ASX GMA traded on Saturday 2018-03-17 in the source; Friday 2018-03-16 was a session."""
    sessions = pd.DatetimeIndex(["2018-03-15", "2018-03-16", "2018-03-19"])
    frame = bars([("2018-03-16", 2.4, 2.42, 2.37, 2.4, 1), ("2018-03-17", 2.41, 2.42, 2.37, 2.395, 385_796)])

    out = check_bars(frame, sessions)

    assert out["flags"].tolist() == [0, NOT_A_SESSION]
    assert out["quarantined"].tolist() == [False, True]
    assert check_bars(frame)["flags"].tolist() == [0, 0]  # no calendar given: no calendar check


def test_dates_before_the_calendar_starts_are_not_judged():
    sessions = pd.DatetimeIndex(["1990-01-02", "1990-01-03"])
    out = check_bars(bars([("1985-06-01", 1, 1, 1, 1, 1), ("1990-01-06", 1, 1, 1, 1, 1)]), sessions)

    assert out["flags"].tolist() == [0, NOT_A_SESSION]


def test_it_never_drops_or_reorders_rows_and_leaves_its_input_alone():
    frame = bars([("2024-03-05", 0, 0, 0, 0, 1), ("2024-03-04", 1, 1, 1, 1, 1), ("2024-03-05", 1, 1, 1, 1, 1)])
    original = frame.copy()

    out = check_bars(frame)

    assert out["date"].tolist() == original["date"].tolist()
    pd.testing.assert_frame_equal(frame, original)


def test_describe_flags_lists_reasons_in_a_fixed_order():
    # 5 = ZERO_PRICE (1) | NOT_A_SESSION (4).
    assert describe_flags(5) == ["zero or negative price (stored as missing)", "date is not a session of the exchange"]
    assert describe_flags(0) == []
