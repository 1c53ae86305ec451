"""quant.quality: check_bars (flags, NULLing of bad values, the calendar), check_series (jumps, stale runs,
flips, reused codes) and session gaps. No database."""
import numpy as np
import pandas as pd
import pytest

from quant.quality import (
    FLAG_LABELS, FLIP, JUMP, MISSING_CLOSE, NEGATIVE_VOLUME, NOT_A_SESSION, OHLC_INCONSISTENT, QUARANTINE_MASK,
    SERIES_FLAGS, STALE, SYMBOL_REUSED, ZERO_PRICE, check_bars, check_series, describe_flags, missing_sessions,
    session_gaps, sessions_in_span,
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


# --- series checks ---------------------------------------------------------------------------------

WEEKDAYS = pd.bdate_range("2024-01-01", "2024-12-31")


def series(closes, *, key="X", start="2024-03-04", volume=1_000, dates=None):
    """One instrument's bars on consecutive weekdays from `start` (or on `dates`); None = missing close."""
    dates = pd.DatetimeIndex(dates) if dates is not None else pd.bdate_range(start, periods=len(closes))
    volumes = volume if isinstance(volume, list) else [volume] * len(closes)
    return pd.DataFrame({"key": key, "date": dates, "close": [np.nan if c is None else c for c in closes],
                         "volume": volumes})


def test_br07_a_missing_close_is_skipped_not_a_jump():
    """BR-07 after check_bars: 10.00, 10.20, NaN, 10.10, 10.30; 10.10 is compared with 10.20 (-0.98%)."""
    checked = check_bars(bars([(f"2024-03-{4 + i:02d}", c, c, c, c, 100)
                               for i, c in enumerate([10.00, 10.20, 0.00, 10.10, 10.30])]))
    flags = check_series(checked.assign(key="X"), sessions=WEEKDAYS)
    assert flags.tolist() == [0, 0, 0, 0, 0]
    assert (checked["flags"].to_numpy() | flags).tolist() == [0, 0, ZERO_PRICE | MISSING_CLOSE, 0, 0]


def test_a_consolidation_without_an_action_is_an_unexplained_jump_and_not_quarantined():
    """GMG 2012-04-19: 0.69 -> 3.60 is x5.2 (> x3); the 3.58 after it is an ordinary day."""
    frame = series([0.70, 0.69, 3.60, 3.58])
    flags = check_series(frame, sessions=WEEKDAYS)
    assert flags.tolist() == [0, 0, JUMP, 0]
    assert not JUMP & QUARANTINE_MASK


def test_a_move_of_exactly_three_times_is_not_a_jump_but_just_over_is():
    # log(3.00 / 1.00) is the threshold itself; 3.01 / 1.00 is over it; 1.00 / 3.01 is under x1/3.
    assert check_series(series([1.00, 3.00]), sessions=WEEKDAYS).tolist() == [0, 0]
    assert check_series(series([1.00, 3.01, 1.00]), sessions=WEEKDAYS).tolist()[1] in (JUMP, FLIP)


def test_a_split_on_its_ex_date_explains_the_jump():
    frame = series([500.0, 510.0, 127.5, 128.0])  # a 4:1 split on the third day (2024-03-06)
    explained = pd.DataFrame({"key": ["X"], "date": pd.to_datetime(["2024-03-06"])})
    assert check_series(frame, sessions=WEEKDAYS).tolist() == [0, 0, JUMP, 0]
    assert check_series(frame, explained=explained, sessions=WEEKDAYS).tolist() == [0, 0, 0, 0]
    # An action on another date or another instrument explains nothing.
    elsewhere = pd.DataFrame({"key": ["X", "Y"], "date": pd.to_datetime(["2024-03-05", "2024-03-06"])})
    assert check_series(frame, explained=elsewhere, sessions=WEEKDAYS).tolist() == [0, 0, JUMP, 0]


def test_a_vendor_adjusted_series_without_the_jump_explains_it():
    # adj_factor 0.25 before the split: adjusted closes 125, 127.5, 127.5, 128.
    frame = series([500.0, 510.0, 127.5, 128.0]).assign(adj_factor=[0.25, 0.25, 1.0, 1.0])
    assert check_series(frame, sessions=WEEKDAYS).tolist() == [0, 0, 0, 0]


def test_xam_style_flips_flag_the_excursion_and_are_quarantined():
    """XAM 2012-05: 25.00 (cents) -> 0.23 (dollars) for 3 bars -> back to 20.00."""
    closes = [25.0, 25.0, 0.23, 0.23, 0.19, 20.0, 21.0]
    flags = check_series(series(closes), sessions=WEEKDAYS)
    # log(0.23/25) = -4.69, log(20/0.19) = +4.66: opposite, 3 bars apart, back within x2 (sum -0.03).
    # The excursion is bars 2..4; the move back (bar 5) is neither a jump nor part of it.
    assert flags.tolist() == [0, 0, FLIP, FLIP, FLIP, 0, 0]
    assert FLIP & QUARANTINE_MASK


def test_chained_flips_flag_the_whole_stretch():
    # 20 -> 0.2 (bar 1) -> 20 (bar 3) -> 0.2 (bar 5) -> 20 (bar 6): the move back on bar 3 starts a new one.
    closes = [20.0, 0.2, 0.2, 20.0, 20.0, 0.2, 20.0]
    flags = check_series(series(closes), sessions=WEEKDAYS)
    assert flags.tolist() == [0, FLIP, FLIP, FLIP, FLIP, FLIP, 0]


def test_a_jump_undone_too_late_or_not_back_to_its_level_is_no_flip():
    late = [1.0] + [5.0] * 31 + [1.0]  # undone after 31 bars (> FLIP_WINDOW = 30)
    flags = check_series(series(late), sessions=pd.bdate_range("2024-01-01", periods=60))
    assert flags[1] == JUMP and flags[32] == JUMP and not (flags & FLIP).any()
    # x5 then /12: lands at 0.42 of the start (outside x2 of it), so two jumps, no flip.
    assert check_series(series([1.0, 5.0, 5.0 / 12]), sessions=WEEKDAYS).tolist() == [0, JUMP, JUMP]


def test_a_new_level_after_a_long_gap_is_a_reused_symbol_and_quarantined():
    """WDS: 0.105 in 2015, nothing for 1,707 sessions, 29.18 on 2022-05-25 (Woodside took the code)."""
    sessions = pd.bdate_range("2015-01-01", "2022-12-30")
    frame = series([0.11, 0.105, 29.18, 29.10], dates=["2015-08-24", "2015-08-25", "2022-05-25", "2022-05-26"])
    flags = check_series(frame, sessions=sessions)
    assert flags.tolist() == [0, 0, SYMBOL_REUSED, 0]
    assert SYMBOL_REUSED & QUARANTINE_MASK
    # The same move after a 10-session gap (a consolidation's deferred settlement) is a jump.
    short = series([0.11, 0.105, 29.18], dates=["2015-08-24", "2015-08-25", "2015-09-09"])
    assert check_series(short, sessions=sessions).tolist() == [0, 0, JUMP]


def test_a_long_gap_without_a_big_move_flags_nothing():
    sessions = pd.bdate_range("2015-01-01", "2022-12-30")
    frame = series([2.00, 2.10], dates=["2015-08-24", "2021-04-06"])
    assert check_series(frame, sessions=sessions).tolist() == [0, 0]


def test_without_a_calendar_the_gap_is_counted_in_weekdays():
    frame = series([0.105, 29.18], dates=["2015-08-25", "2022-05-25"])
    assert check_series(frame).tolist() == [0, SYMBOL_REUSED]


def test_five_equal_closes_with_a_zero_volume_repeat_are_stale_from_the_second():
    frame = series([1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.1], volume=[5, 5, 5, 0, 5, 5, 5])
    assert check_series(frame, sessions=WEEKDAYS).tolist() == [0, 0, STALE, STALE, STALE, STALE, 0]


def test_equal_closes_that_trade_are_stale_only_from_ten_bars():
    traded = series([2.0] * 9 + [2.1])  # a run of 9, every bar with volume
    assert not check_series(traded, sessions=WEEKDAYS).any()
    ten = series([2.0] * 10 + [2.1])
    assert check_series(ten, sessions=WEEKDAYS).tolist() == [0] + [STALE] * 9 + [0]
    idle_four = series([2.0] * 4 + [2.1], volume=0)  # a zero-volume run of only 4
    assert not check_series(idle_four, sessions=WEEKDAYS).any()


def test_br10_a_fund_nav_repeating_on_non_consecutive_days_is_not_stale():
    """BR-10a: 60.52 on 06-29 and 07-02, 60.19 on 07-01 and 07-08 (8 days, volume 0 as for a NAV)."""
    closes = [60.35, 60.52, 60.41, 60.19, 60.52, 60.33, 60.27, 60.19]
    dates = ["2021-06-28", "2021-06-29", "2021-06-30", "2021-07-01", "2021-07-02", "2021-07-06", "2021-07-07",
             "2021-07-08"]
    flags = check_series(series(closes, dates=dates, volume=0), sessions=pd.bdate_range("2021-06-01", "2021-07-31"))
    assert flags.tolist() == [0] * 8


def test_series_are_judged_per_instrument_in_date_order_whatever_the_row_order():
    # Y's 1.00 must not be compared with X's 10.00; X arrives shuffled.
    x = series([10.0, 10.1, 40.0, 40.2], key="X")
    y = series([1.0, 1.01], key="Y")
    frame = pd.concat([x.iloc[[3, 1]], y, x.iloc[[0, 2]]], ignore_index=True)
    flags = check_series(frame, sessions=WEEKDAYS)
    # Rows: X 03-07, X 03-05, Y 03-04, Y 03-05, X 03-04, X 03-06 (the x3.96 jump).
    assert flags.tolist() == [0, 0, 0, 0, 0, JUMP]


def test_check_series_sets_only_series_bits_and_handles_no_rows():
    assert check_series(series([]), sessions=WEEKDAYS).tolist() == []
    assert SERIES_FLAGS == JUMP | STALE | FLIP | SYMBOL_REUSED
    assert all(bit in FLAG_LABELS for bit in (JUMP, STALE, FLIP, SYMBOL_REUSED))


# --- missing sessions ------------------------------------------------------------------------------

def test_session_gaps_lists_runs_of_missing_sessions_inside_each_span():
    sessions = pd.DatetimeIndex(["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08",
                                 "2024-03-11", "2024-03-12"])
    frame = pd.DataFrame({
        "key": ["A", "A", "A", "A", "B", "B"],
        # A misses 03-05 and 03-07..08; B starts 03-11, so 03-04..08 is outside its span; 03-09 is a Saturday.
        "date": pd.to_datetime(["2024-03-04", "2024-03-06", "2024-03-09", "2024-03-11", "2024-03-11", "2024-03-12"]),
    })
    gaps = session_gaps(frame, sessions)
    assert gaps.to_dict("records") == [
        {"key": "A", "start": pd.Timestamp("2024-03-05"), "end": pd.Timestamp("2024-03-05"), "sessions": 1},
        {"key": "A", "start": pd.Timestamp("2024-03-07"), "end": pd.Timestamp("2024-03-08"), "sessions": 2},
    ]
    missing = missing_sessions(frame, sessions)
    assert missing["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-03-05", "2024-03-07", "2024-03-08"]
    assert missing["key"].tolist() == ["A", "A", "A"]


def test_sessions_in_span_counts_inclusive():
    sessions = pd.bdate_range("2024-03-04", "2024-03-15")
    # 03-04..03-08 is 5 sessions; 03-09 (Sat)..03-11 is 1.
    counts = sessions_in_span(pd.to_datetime(["2024-03-04", "2024-03-09"]), pd.to_datetime(["2024-03-08", "2024-03-11"]),
                              sessions)
    assert counts.tolist() == [5, 1]


def test_the_asx_file_has_33710_missing_ticker_sessions_and_its_known_defects():
    """The real ASX top-300 file: gaps against XASX, XAM's flips, the reused WDS/HLS/NEM codes, GMG's jump."""
    import exchange_calendars

    from tests.conftest import MARKETDATA

    frame = pd.read_parquet(MARKETDATA / "asx" / "asx_daily_top300_2010_2024.parquet",
                            columns=["ticker", "date", "close", "volume"]).rename(columns={"ticker": "key"})
    frame["date"] = pd.to_datetime(frame["date"])
    sessions = pd.DatetimeIndex(exchange_calendars.get_calendar("XASX", start="2009-01-02").sessions).tz_localize(None)
    assert session_gaps(frame, sessions)["sessions"].sum() == 33_710  # as the file's README counts them
    flags = check_series(frame, sessions=sessions)
    flagged = frame.assign(flags=flags)

    def on(key, day):
        return int(flagged.loc[(flagged["key"] == key) & (flagged["date"] == day), "flags"].iloc[0])

    assert on("WDS", "2022-05-25") == SYMBOL_REUSED
    assert on("HLS", "2018-12-05") == SYMBOL_REUSED
    assert on("NEM", "2023-10-27") == SYMBOL_REUSED
    assert on("GMG", "2012-04-19") == JUMP
    assert on("XAM", "2011-05-02") == FLIP and on("XAM", "2011-06-01") == 0  # 0.50 for May 2011, back to 45
    xam = flagged[(flagged["key"] == "XAM") & (flagged["flags"] & FLIP != 0)]
    assert xam["date"].dt.year.isin([2011, 2012]).all() and len(xam) == 69
    assert (flagged["flags"] & STALE != 0).sum() > 0
