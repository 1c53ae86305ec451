"""quant.adjust: back-adjustment factors from splits and dividends, by hand and against the vendor. No database."""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from quant.adjust import adjusted_close, adjustment_factors, snap_ratio
from tests.conftest import MARKETDATA

SP500 = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"
DAYS = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]


def bars(closes, key=None):
    frame = pd.DataFrame({"date": pd.to_datetime(DAYS[:len(closes)]), "close": closes})
    if key is not None:
        frame.insert(0, "key", key)
    return frame


def actions(rows, key=None):
    """rows: (ex_date, ratio, amount); NaN where the action has none."""
    frame = pd.DataFrame(rows, columns=["ex_date", "ratio", "amount"])
    frame["ex_date"] = pd.to_datetime(frame["ex_date"])
    if key is not None:
        frame.insert(0, "key", key)
    return frame


def test_a_2_for_1_split_halves_the_bars_before_its_ex_date():
    # Closes 100, 102, 51 with a 2:1 split effective on day 3: factors 1/2, 1/2, 1.
    result = adjustment_factors(bars([100.0, 102.0, 51.0]), actions([("2024-03-06", 2.0, np.nan)]))
    assert result.factor.tolist() == [0.5, 0.5, 1.0]
    assert result.skipped.empty


def test_a_dividend_scales_the_bars_before_its_ex_date_by_one_minus_yield():
    # A 1.00 dividend, previous close 50: 1 - 1/50 = 0.98 before the ex-date, 1 from it on.
    result = adjustment_factors(bars([49.0, 50.0, 49.2]), actions([("2024-03-06", np.nan, 1.00)]))
    np.testing.assert_allclose(result.factor, [0.98, 0.98, 1.0], rtol=0, atol=1e-15)


def test_actions_multiply_and_each_uses_its_own_previous_close():
    # Closes 100, 102, 51, 50. Dividend 1.02 ex day 2 (prev close 100): 0.9898; 2:1 split ex day 3: 0.5;
    # dividend 0.51 ex day 4 (prev close 51): 0.99.
    # Day 1: 0.9898 x 0.5 x 0.99 = 0.4899510; day 2: 0.5 x 0.99 = 0.495; day 3: 0.99; day 4: 1.
    result = adjustment_factors(bars([100.0, 102.0, 51.0, 50.0]), actions([
        ("2024-03-05", np.nan, 1.02), ("2024-03-06", 2.0, np.nan), ("2024-03-07", np.nan, 0.51),
    ]))
    np.testing.assert_allclose(result.factor, [0.489951, 0.495, 0.99, 1.0], rtol=1e-12)


def test_a_dividend_and_a_split_on_one_ex_date_combine_as_the_vendor_does():
    # (1 - 2/100) / 2 = 0.49 before the ex-date; the same as two rows on that date.
    combined = adjustment_factors(bars([100.0, 49.0]), actions([("2024-03-05", 2.0, 2.0)]))
    separate = adjustment_factors(bars([100.0, 49.0]), actions([("2024-03-05", 2.0, np.nan),
                                                                ("2024-03-05", np.nan, 2.0)]))
    np.testing.assert_allclose(combined.factor, [0.49, 1.0], rtol=1e-15)
    np.testing.assert_allclose(separate.factor, combined.factor, rtol=1e-15)


def test_an_adjusted_return_across_a_split_is_the_ordinary_return():
    # 2:1 split with the market value unchanged: raw 100 -> 50 is -50%, adjusted 50 -> 50 is 0%.
    # With the price also up 2% on the day: raw 100 -> 51, adjusted 50 -> 51 = +2%.
    flat = adjusted_close(bars([100.0, 50.0]), actions([("2024-03-05", 2.0, np.nan)]))
    up = adjusted_close(bars([100.0, 51.0]), actions([("2024-03-05", 2.0, np.nan)]))
    assert flat.pct_change().iloc[1] == 0.0
    assert up.pct_change().iloc[1] == pytest.approx(0.02, abs=1e-15)


def test_a_reverse_split_raises_the_bars_before_it():
    # AIG's 1:20 consolidation is ratio 0.05: earlier prices x 20 (1.50 raw -> 30.00 adjusted).
    result = adjustment_factors(bars([1.50, 30.0]), actions([("2024-03-05", 0.05, np.nan)]))
    np.testing.assert_allclose(result.factor, [20.0, 1.0], rtol=1e-15)


def test_actions_after_the_last_bar_apply_to_every_bar_and_before_the_first_to_none():
    result = adjustment_factors(bars([10.0, 11.0]), actions([("2020-01-02", 4.0, np.nan),
                                                             ("2024-03-08", np.nan, 0.55)]))
    # The dividend's previous close is 11 (the last bar): 1 - 0.55/11 = 0.95 for both bars.
    np.testing.assert_allclose(result.factor, [0.95, 0.95], rtol=1e-15)
    assert result.skipped.empty


def test_an_action_between_bars_takes_the_close_of_the_last_bar_before_it():
    # Bars on 03-04 and 03-07; dividend ex 03-06 (no bar that day): previous close = 03-04's 40.
    frame = pd.DataFrame({"date": pd.to_datetime(["2024-03-04", "2024-03-07"]), "close": [40.0, 39.0]})
    result = adjustment_factors(frame, actions([("2024-03-06", np.nan, 0.4)]))
    np.testing.assert_allclose(result.factor, [0.99, 1.0], rtol=1e-15)


def test_a_dividend_without_a_previous_close_is_skipped_and_reported_but_its_split_applies():
    # Day 2's close is missing; the ex-day-3 action pays 1.00 and splits 2:1: only 1/2 is applied.
    result = adjustment_factors(bars([100.0, np.nan, 51.0]), actions([("2024-03-06", 2.0, 1.00)]))
    assert result.factor.tolist() == [0.5, 0.5, 1.0]
    assert result.skipped[["ex_date", "amount", "reason"]].values.tolist() == [
        [pd.Timestamp("2024-03-06"), 1.00, "no close on the session before the ex-date"]]


def test_a_dividend_at_or_above_the_previous_close_is_skipped_never_a_negative_factor():
    result = adjustment_factors(bars([5.0, 4.0]), actions([("2024-03-05", np.nan, 5.0)]))
    assert result.factor.tolist() == [1.0, 1.0]
    assert result.skipped["reason"].tolist() == ["dividend not below the previous close"]


def test_keys_keep_instruments_apart_and_any_row_order_is_answered_in_place():
    frame = pd.concat([bars([100.0, 102.0, 51.0], key="AAA"), bars([20.0, 21.0, 20.79], key="BBB")])
    frame = frame.iloc[[5, 0, 3, 2, 4, 1]].reset_index(drop=True)
    result = adjustment_factors(frame, pd.concat([
        actions([("2024-03-06", 2.0, np.nan)], key="AAA"), actions([("2024-03-06", np.nan, 0.21)], key="BBB"),
    ]))
    # AAA: 0.5, 0.5, 1; BBB: 1 - 0.21/21 = 0.99 before 03-06.
    expected = {("AAA", "2024-03-04"): 0.5, ("AAA", "2024-03-05"): 0.5, ("AAA", "2024-03-06"): 1.0,
                ("BBB", "2024-03-04"): 0.99, ("BBB", "2024-03-05"): 0.99, ("BBB", "2024-03-06"): 1.0}
    got = {(k, d.strftime("%Y-%m-%d")): f for k, d, f in zip(frame["key"], frame["date"], result.factor)}
    assert got == pytest.approx(expected, rel=1e-15)


def test_no_actions_leave_every_factor_at_one():
    result = adjustment_factors(bars([1.0, 2.0, 3.0]), actions([]))
    assert result.factor.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("given, snapped", [
    (7.000007, 7.0), (1.49999925, 1.5), (3.000003, 3.0), (0.333333, 1 / 3), (1.333333, 4 / 3),
    (1.052632, 20 / 19), (0.166667, 1 / 6), (0.05, 0.05), (2.0, 2.0),
    # Spin-off adjustments are real fractional ratios and stay as given.
    (1.487, 1.487), (1.011, 1.011), (1.054, 1.054), (0.303582, 0.303582), (0.955, 0.955),
])
def test_snap_ratio_removes_vendor_rounding_noise_only(given, snapped):
    assert snap_ratio([given])[0] == snapped


def vendor(tickers):
    table = pq.read_table(SP500, filters=[("ticker", "in", tickers)]).to_pandas()
    table["date"] = pd.to_datetime(table["date"])
    table["ticker"] = table["ticker"].astype(str)
    paid = table[(table["dividend_amount"] != 0) | (table["split_coefficient"] != 1)]
    found = pd.DataFrame({"key": paid["ticker"], "ex_date": paid["date"],
                          "ratio": snap_ratio(paid["split_coefficient"]), "amount": paid["dividend_amount"]})
    frame = table.rename(columns={"ticker": "key"})[["key", "date", "close", "adjusted_close"]]
    return frame, found


def test_rebuilt_adjusted_closes_match_the_vendor_within_one_percent():
    # AAPL (7:1 in 2014 as 7.000007, 4:1 in 2020, quarterly dividends), NFLX (7:1 2015), AIG (1:20
    # consolidation 2009), C (1:10 2011), HON and PFE (spin-off ratios), KO and MSFT (dividends only).
    tickers = ["AAPL", "NFLX", "AIG", "C", "HON", "PFE", "KO", "MSFT"]
    frame, found = vendor(tickers)
    result = adjustment_factors(frame, found)
    relative = np.abs(frame["close"].to_numpy() * result.factor / frame["adjusted_close"].to_numpy() - 1)
    worst = pd.Series(relative).groupby(frame["key"].to_numpy()).max()
    assert worst.index.tolist() == sorted(tickers)
    assert (worst < 0.01).all(), worst.to_dict()
    assert result.skipped.empty
    # AAPL's first bar, 2007-01-03: close 83.80, all later actions give the vendor's 2.5717 to 0.05%.
    first = frame.index[(frame["key"] == "AAPL") & (frame["date"] == "2007-01-03")][0]
    assert frame.loc[first, "close"] * result.factor[first] == pytest.approx(frame.loc[first, "adjusted_close"],
                                                                              rel=5e-4)


def test_a_ticker_the_vendor_got_wrong_is_reported_not_crashed_on():
    # JCI 2007-07-02: a dividend of 88.53 against a previous close of 33.79 (the README names JCI as
    # inconsistent). That dividend is skipped and reported; its 1:4 ratio and the other actions still apply.
    frame, found = vendor(["JCI"])
    result = adjustment_factors(frame, found)
    assert np.isfinite(result.factor).all() and (result.factor > 0).all()
    assert result.skipped[["key", "ex_date", "amount", "previous_close", "reason"]].values.tolist() == [
        ["JCI", pd.Timestamp("2007-07-02"), 88.53, 33.79, "dividend not below the previous close"]]
    # After that date the rebuild agrees with the vendor again within 1%.
    later = (frame["date"] > "2016-09-06").to_numpy()
    relative = np.abs(frame["close"].to_numpy() * result.factor / frame["adjusted_close"].to_numpy() - 1)
    assert relative[later].max() < 0.01
