import numpy as np
import pandas as pd
import pytest

from quant.bars import weekly_bars


def daily(rows):
    return pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"]).assign(
        date=lambda f: pd.to_datetime(f["date"]))


def test_br10_a_partial_week_is_first_open_max_high_min_low_last_close_summed_volume():
    # Week of Mon 2024-03-04 complete (5 bars), then Mon-Wed of the next week (a partial week).
    bars = daily([
        ("2024-03-04", 10.0, 11.0, 9.5, 10.5, 100), ("2024-03-05", 10.5, 12.0, 10.0, 11.8, 200),
        ("2024-03-06", 11.8, 11.9, 11.0, 11.2, 150), ("2024-03-07", 11.2, 11.6, 10.8, 11.5, 120),
        ("2024-03-08", 11.5, 11.7, 11.1, 11.3, 130),
        ("2024-03-11", 11.4, 11.5, 10.9, 11.0, 90), ("2024-03-12", 11.0, 12.5, 10.7, 12.4, 300),
        ("2024-03-13", 12.4, 12.6, 12.0, 12.1, 110),
    ])
    weeks = weekly_bars(bars)
    assert weeks["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-03-08", "2024-03-13"]
    # Week 1: open 10.0 (Mon), high 12.0 (Tue), low 9.5 (Mon), close 11.3 (Fri), volume 100+200+150+120+130.
    assert weeks.iloc[0][["open", "high", "low", "close", "volume", "days"]].tolist() == [10.0, 12.0, 9.5, 11.3, 700, 5]
    # Week 2 (partial): open 11.4, high 12.6, low 10.7, close 12.1, volume 90+300+110 = 500, dated Wed.
    assert weeks.iloc[1][["open", "high", "low", "close", "volume", "days"]].tolist() == [11.4, 12.6, 10.7, 12.1, 500, 3]


def test_missing_values_are_skipped_not_read_as_zero():
    # Monday's open and volume are missing (a zero price stored as missing): the open is Tuesday's.
    bars = daily([("2024-03-04", np.nan, 11.0, 9.5, 10.5, np.nan), ("2024-03-05", 10.5, 12.0, 10.0, 11.8, 200)])
    week = weekly_bars(bars).iloc[0]
    assert (week["open"], week["low"], week["volume"]) == (10.5, 9.5, 200)


def test_a_week_across_a_year_end_is_one_week():
    bars = daily([("2024-12-30", 1, 1, 1, 1, 1), ("2024-12-31", 2, 2, 2, 2, 1), ("2025-01-02", 3, 3, 3, 3, 1)])
    assert weekly_bars(bars)["close"].tolist() == [3]


def test_no_bars_give_no_weeks():
    assert weekly_bars(daily([])).empty
