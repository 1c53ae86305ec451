"""quant.portfolio on small hand-computed books: sizing, FIFO lots, Decimal P&L, marks, time-weighted returns."""
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from quant import metrics
from quant import portfolio as book

D = Decimal


def days(*texts):
    return pd.DatetimeIndex(pd.to_datetime(list(texts)))


def legs(*rows):
    """(date, key, currency, shares, cash, label) tuples -> the legs frame mark_to_market reads."""
    frame = pd.DataFrame(rows, columns=["date", "key", "currency", "shares", "cash", "label"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def no_movements():
    return pd.DataFrame({"date": pd.to_datetime([]), "amount": [], "external": pd.Series([], dtype=bool)})


# --- sizing (PITFALLS BR-21) ---------------------------------------------------------------------

def test_a_target_below_one_share_is_no_trade_with_the_reason():
    shares, reason = book.shares_for_target(1000, 120, 0.05)
    # 5% of 1,000.00 = 50.00; 50 / 120 = 0.417 shares -> 0, never rounded up or silently dropped.
    assert shares == 0
    assert "below one share" in reason and "0.417 shares" in reason


@pytest.mark.parametrize(("equity", "price", "weight", "expected"), [
    (1000, 120, 0.30, 2),      # 300 / 120 = 2.5 -> 2 (toward zero), cost 240.00
    (1000, 120, -0.30, -2),    # -2.5 -> -2, a short toward zero
    (479.988, 120, 1.0, 4),    # 3.9999 is within 1e-4 of 4: a rounding artefact, 4 shares
    (660, 120, 1.0, 5),        # 5.5 -> 5
])
def test_whole_shares_round_toward_zero_within_the_tolerance(equity, price, weight, expected):
    shares, reason = book.shares_for_target(equity, price, weight)
    assert (shares, reason) == (expected, None)


# --- lots and commissions ------------------------------------------------------------------------

def test_fifo_takes_the_oldest_lot_first():
    # Lots of 100 then 50; selling 120 empties the first and takes 20 of the second.
    assert book.fifo_allocate([(1, D(100)), (2, D(50))], D(120)) == [(1, D(100)), (2, D(20))]
    assert book.fifo_allocate([(1, D(100)), (2, D(50))], D(100)) == [(1, D(100))]


def test_fifo_refuses_more_than_the_lots_hold():
    with pytest.raises(ValueError, match="151 is more than the 150 open"):
        book.fifo_allocate([(1, D(100)), (2, D(50))], D(151))


def test_a_commission_is_shared_pro_rata_and_sums_exactly():
    # 10.00 / 3 = 3.333333 each, the remainder on the last: 3.333333 + 3.333333 + 3.333334 = 10.
    assert book.pro_rata(D("10.00"), [1, 1, 1]) == [D("3.333333"), D("3.333333"), D("3.333334")]
    # 12.00 over 100 and 20 shares: 10.00 and 2.00.
    assert book.pro_rata(D("12.00"), [D(100), D(20)]) == [D("10.000000"), D("2.00")]


def test_split_ratio_multiplies_the_splits_in_the_window():
    splits = [(pd.Timestamp("2020-08-31").date(), 4.0), (pd.Timestamp("2014-06-09").date(), 7.0)]
    assert book.split_ratio(splits, pd.Timestamp("2020-08-28").date(), pd.Timestamp("2020-09-01").date()) == 4.0
    assert book.split_ratio(splits, pd.Timestamp("2014-01-02").date(), pd.Timestamp("2021-01-04").date()) == 28.0
    # The ex-date itself is already on the new basis: a lot bought on it has no split to undo.
    assert book.split_ratio(splits, pd.Timestamp("2020-08-31").date(), pd.Timestamp("2021-01-04").date()) == 1.0


# --- realised P&L --------------------------------------------------------------------------------

def test_a_round_trip_charges_each_legs_commission_once():
    # PITFALLS BR-19: 10 at 29,037.85 (notional 290,378.50), 0.04% fee = 116.1514 on each leg.
    result = book.realised_pnl(direction="long", quantity=D(10), entry_price=D("29037.85"),
                               entry_commission=D("116.1514"), exits=[(D(10), D("29037.85"), D("116.1514"), 1.0)])
    assert result["fees"] == D("232.3028")        # 2 x 116.1514, never 4 x
    assert result["pnl"] == D("-232.3028")        # same price: only the fees; the bug gave -464.6056
    assert result["pnl_pct"] == pytest.approx(-0.0008, abs=1e-15)  # 232.3028 / 290,378.50


def test_decimal_pnl_is_exact():
    # PITFALLS BR-22: 10 x (187.44 - 180.10) = 73.40 exactly; float gives 73.40000000000003.
    result = book.realised_pnl(direction="long", quantity=D(10), entry_price=D("180.10"), entry_commission=D(0),
                               exits=[(D(10), D("187.44"), D(0), 1.0)])
    assert result["pnl"] == D("73.40")
    assert 10 * (187.44 - 180.10) != 73.40


def test_a_short_gains_when_the_price_falls():
    # Short 50 at 200.00, cover at 180.00, 5.00 a leg: 50 x 20 - 10 = 990.00; 990 / 10,000 = 9.9%.
    result = book.realised_pnl(direction="short", quantity=D(50), entry_price=D(200), entry_commission=D(5),
                               exits=[(D(50), D(180), D(5), 1.0)])
    assert (result["pnl"], result["fees"]) == (D(990), D(10))
    assert result["pnl_pct"] == pytest.approx(0.099)


def test_partial_exits_realise_their_share_of_the_entry_commission():
    exits = [(D(30), D(12), D(1), 1.0)]
    first = book.realised_pnl(direction="long", quantity=D(100), entry_price=D(10), entry_commission=D(1), exits=exits)
    # 30 x (12 - 10) - 1 (exit fee) - 1 x 30/100 (the entry fee's share) = 58.70 on 300.00 of entry notional.
    assert first["closed_quantity"] == D(30)
    assert first["pnl"] == D("58.70")
    assert first["pnl_pct"] == pytest.approx(58.70 / 300)
    both = book.realised_pnl(direction="long", quantity=D(100), entry_price=D(10), entry_commission=D(1),
                             exits=[*exits, (D(70), D(9), D(1), 1.0)])
    # (30 x 12 + 70 x 9) - 100 x 10 - 1 - 2 = 990 - 1000 - 3 = -13.00; average exit 990 / 100 = 9.90.
    assert (both["closed_quantity"], both["pnl"], both["exit_price"]) == (D(100), D(-13), D("9.9"))


def test_an_exit_after_a_split_is_matched_on_the_entry_basis():
    # 10 bought at 400.00, a 4:1 split, 40 sold at 110.00: 10 entry shares closed; 4,400 - 4,000 = 400.
    result = book.realised_pnl(direction="long", quantity=D(10), entry_price=D(400), entry_commission=D(0),
                               exits=[(D(40), D(110), D(0), 4.0)])
    assert (result["closed_quantity"], result["pnl"], result["exit_price"]) == (D(10), D(400), D(110))
    assert result["pnl_pct"] == pytest.approx(0.10)


def test_base_currency_pnl_converts_each_leg_at_its_days_rate():
    # 10 at 100 USD when 1 USD = 1.6 AUD (cost 1,600 AUD), sold at 110 USD when 1 USD = 1.25 AUD
    # (1,375 AUD): +100 USD is -225 AUD.
    pnl = book.realised_pnl_base(direction="long", quantity=D(10), entry_price=D(100), entry_commission=D(0),
                                 entry_rate=1.6, exits=[(D(10), D(110), D(0), 1.0, 1.25)])
    assert pnl == D(-225)
    assert book.realised_pnl_base(direction="long", quantity=D(10), entry_price=D(100), entry_commission=D(0),
                                  entry_rate=None, exits=[(D(10), D(110), D(0), 1.0, 1.25)]) is None


def test_the_first_affected_date_is_the_earliest_leg_that_changed():
    d1, d2, d3 = (pd.Timestamp(t).date() for t in ("2024-01-02", "2024-01-30", "2024-02-15"))
    old = [(d1, "entry", D(10), D(100)), (d2, "exit", D(5), D(110)), (d3, "exit", D(5), D(120))]
    assert book.first_affected_date(old, [old[0], old[1], (d3, "exit", D(5), D(121))]) == d3
    assert book.first_affected_date(old, []) == d1            # a cancellation moves everything from the entry
    assert book.first_affected_date(old, list(old)) is None   # notes only: nothing to recompute


# --- marks ---------------------------------------------------------------------------------------

def test_a_long_position_is_marked_at_each_close():
    # PITFALLS BR-01 as a journal: 10,000 cash, all in at 100 (100 shares); closes 90, 80, 75, 78, 82.
    dates = days("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08")
    closes = pd.DataFrame({"X:A": [90.0, 80, 75, 78, 82]}, index=dates)
    daily, holdings = book.mark_to_market(
        dates=dates, legs=legs(("2024-01-02", "X:A", "USD", 100, -10_000, "buy")), closes=closes, splits=None,
        fx=None, movements=no_movements(), starting_cash=10_000, base="USD")
    assert daily["value"].tolist() == [9000, 8000, 7500, 7800, 8200]
    assert daily["cash"].tolist() == [0, 0, 0, 0, 0]
    returns = book.time_weighted_returns(daily["value"], daily["flows"], 10_000)
    # 9000/10000 - 1, 8000/9000 - 1, 7500/8000 - 1, 7800/7500 - 1, 8200/7800 - 1
    assert returns.tolist() == pytest.approx([-0.10, -0.111111, -0.0625, 0.04, 0.051282], abs=1e-6)
    assert metrics.max_drawdown(returns) == pytest.approx(-0.25)   # 7,500 / 10,000 - 1, not 7,500 / 9,000 - 1
    assert holdings.to_dict("records")[0] | {"price_date": None} == {
        "key": "X:A", "currency": "USD", "shares": 100.0, "price": 82.0, "price_date": None, "rate": 1.0,
        "value": 8200.0}


def test_a_short_is_a_liability_marked_at_each_close():
    # 10,000 cash; short 50 at 200 (+10,000 cash); the close falls to 180: 20,000 - 50 x 180 = 11,000.
    dates = days("2024-01-02", "2024-01-03")
    daily, _ = book.mark_to_market(
        dates=dates, legs=legs(("2024-01-02", "X:A", "USD", -50, 10_000, "short")),
        closes=pd.DataFrame({"X:A": [200.0, 180.0]}, index=dates), splits=None, fx=None,
        movements=no_movements(), starting_cash=10_000, base="USD")
    assert daily["value"].tolist() == [10_000, 11_000]
    assert daily["invested"].tolist() == [-10_000, -9_000]


def test_a_split_neither_loses_nor_doubles_the_position():
    # 10 at 400 (4,000); a 4:1 split on the 3rd; closes 400 then 101: 40 x 101 = 4,040 + 6,000 cash.
    dates = days("2024-01-02", "2024-01-03")
    splits = pd.DataFrame({"key": ["X:A"], "ex_date": pd.to_datetime(["2024-01-03"]), "ratio": [4.0]})
    daily, holdings = book.mark_to_market(
        dates=dates, legs=legs(("2024-01-02", "X:A", "USD", 10, -4000, "buy")),
        closes=pd.DataFrame({"X:A": [400.0, 101.0]}, index=dates), splits=splits, fx=None,
        movements=no_movements(), starting_cash=10_000, base="USD")
    assert daily["value"].tolist() == [10_000, 10_040]
    assert holdings["shares"].tolist() == [40.0]


def test_a_missing_close_keeps_the_last_price_and_says_its_date():
    dates = days("2024-01-02", "2024-01-03", "2024-01-04")
    closes = pd.DataFrame({"X:A": [100.0, np.nan, np.nan]}, index=dates)  # suspended after the 2nd
    daily, holdings = book.mark_to_market(
        dates=dates, legs=legs(("2024-01-02", "X:A", "USD", 10, -1000, "buy")), closes=closes, splits=None,
        fx=None, movements=no_movements(), starting_cash=1000, base="USD")
    assert daily["value"].tolist() == [1000, 1000, 1000]
    assert holdings["price_date"].iloc[0] == pd.Timestamp("2024-01-02")


def test_a_position_without_any_price_leaves_the_day_unvalued_with_the_reason():
    dates = days("2024-01-02")
    daily, _ = book.mark_to_market(
        dates=dates, legs=legs(("2024-01-02", "X:A", "USD", 10, -1000, "buy")),
        closes=pd.DataFrame(index=pd.DatetimeIndex([])), splits=None, fx=None, movements=no_movements(),
        starting_cash=1000, base="USD")
    assert np.isnan(daily["value"].iloc[0])
    assert daily["reason"].iloc[0] == "no price for X:A on or before 2024-01-02"


def test_foreign_positions_need_a_rate_no_older_than_five_days():
    # An AUD book holding a USD stock; AUD per USD 1.6 on the 2nd only (the caller inverts AUDUSD 0.625).
    dates = days("2024-01-02", "2024-01-05", "2024-01-10")
    fx = pd.DataFrame({"USD": [1.6]}, index=days("2024-01-02"))
    daily, _ = book.mark_to_market(
        dates=dates, legs=legs(("2024-01-02", "X:A", "USD", 10, -1000, "the buy of A")),
        closes=pd.DataFrame({"X:A": [100.0, 110.0, 120.0]}, index=dates), splits=None, fx=fx,
        movements=no_movements(), starting_cash=10_000, base="AUD")
    # 2nd: cash 10,000 - 1,000 x 1.6 = 8,400, position 10 x 100 x 1.6 = 1,600 -> 10,000.
    # 5th: the rate of the 2nd is 3 days old: 8,400 + 10 x 110 x 1.6 = 10,160.
    assert daily["value"].iloc[:2].tolist() == [10_000, 10_160]
    # 10th: 8 days after the last rate: no rate, no value, and the page says why instead of guessing.
    assert np.isnan(daily["value"].iloc[2])
    assert daily["reason"].iloc[2] == "no USD/AUD rate on 2024-01-10 or in the 5 days before"


def test_a_leg_that_cannot_be_converted_leaves_every_later_day_unvalued():
    dates = days("2024-01-02", "2024-01-03")
    daily, _ = book.mark_to_market(
        dates=dates, legs=legs(("2024-01-03", "X:A", "USD", 10, -1000, "the buy of A (T-1)")),
        closes=pd.DataFrame({"X:A": [100.0, 100.0]}, index=dates), splits=None, fx=None,
        movements=no_movements(), starting_cash=10_000, base="AUD")
    assert daily["value"].iloc[0] == 10_000
    assert np.isnan(daily["value"].iloc[1])
    assert daily["reason"].iloc[1] == "no USD/AUD rate on 2024-01-03 or in the 5 days before, to convert the buy of A (T-1)"


def test_deposits_add_cash_and_count_as_flows_on_their_day():
    dates = days("2024-01-02", "2024-01-03", "2024-01-04")
    movements = pd.DataFrame({"date": pd.to_datetime(["2024-01-03", "2024-01-04"]), "amount": [5000.0, 12.5],
                              "external": [True, False]})  # a deposit, then a dividend (income, not a flow)
    daily, _ = book.mark_to_market(dates=dates, legs=legs(), closes=pd.DataFrame(index=dates), splits=None,
                                   fx=None, movements=movements, starting_cash=10_000, base="USD")
    assert daily["value"].tolist() == [10_000, 15_000, 15_012.5]
    assert daily["flows"].tolist() == [0, 5000, 0]


# --- time-weighted returns -----------------------------------------------------------------------

def test_a_deposit_is_not_a_gain():
    returns = book.time_weighted_returns(pd.Series([10_000.0, 10_000, 15_000]), pd.Series([0, 0, 5000.0]), 10_000)
    assert returns.tolist() == [0, 0, 0]


def test_flows_arrive_at_the_start_of_their_day():
    # 15,500 / (10,000 + 5,000) - 1 = 3.3333%; a withdrawal: 8,100 / (10,000 - 2,000) - 1 = 1.25%.
    assert book.time_weighted_returns(pd.Series([15_500.0]), pd.Series([5000.0]), 10_000).iloc[0] == pytest.approx(1 / 30)
    assert book.time_weighted_returns(pd.Series([8100.0]), pd.Series([-2000.0]), 10_000).iloc[0] == pytest.approx(0.0125)


def test_an_unvalued_day_rolls_its_flows_into_the_next_valued_day():
    returns = book.time_weighted_returns(pd.Series([10_000.0, np.nan, 16_000]), pd.Series([0, 5000.0, 0]), 10_000)
    assert math.isnan(returns.iloc[1])
    assert returns.iloc[2] == pytest.approx(16_000 / 15_000 - 1)   # 6.6667%


def test_a_return_on_nothing_is_undefined_not_infinite():
    returns = book.time_weighted_returns(pd.Series([0.0, 5000.0]), pd.Series([0.0, 5000.0]), 0.0)
    assert math.isnan(returns.iloc[0])   # 0 / 0
    assert returns.iloc[1] == 0.0        # 5,000 / (0 + 5,000) - 1


def test_rolling_volatility_uses_the_sample_deviation():
    # PITFALLS BR-06 for the 21-day window: ten +1% and eleven -1% days.
    # mean = -0.01/21; squared deviations 10 x 0.0104762^2 + 11 x 0.0095238^2 = 0.00209524;
    # / 20 -> std 0.0102353 x sqrt(252) = 16.2481%. ddof=0 (/21) would give 15.8565%, sqrt(21/20) less.
    r = pd.Series([0.01] * 10 + [-0.01] * 11)
    stats = book.snapshot_metrics(r)
    assert stats["volatility"].iloc[-1] == pytest.approx(0.162481, abs=5e-7)
    assert stats["volatility"].iloc[:20].isna().all()


def test_a_computation_started_mid_history_continues_it_exactly():
    r = pd.Series(np.sin(np.arange(40)) / 100)
    whole = book.snapshot_metrics(r)
    cut = 30
    tail = book.snapshot_metrics(r.iloc[cut:], prior_returns=r.iloc[:cut].tolist(),
                                 prior_cumulative=whole["cumulative_return"].iloc[cut - 1])
    np.testing.assert_allclose(tail.to_numpy(), whole.iloc[cut:].to_numpy(), rtol=1e-12, atol=1e-15)


def test_period_pnl_takes_out_the_flows():
    value = pd.Series([10_000.0, 10_100, 15_200], index=days("2024-01-02", "2024-01-03", "2024-01-04"))
    flows = pd.Series([0, 0, 5000.0], index=value.index)
    pnl, since, twr = book.period_pnl(value, flows, pd.Timestamp("2024-01-02"), 10_000)
    # 15,200 - 10,000 - 5,000 = 200; TWR 10,100/10,000 x 15,200/(10,100 + 5,000) - 1 = 1.6689%.
    assert (pnl, str(since)) == (200, "2024-01-02")
    assert twr == pytest.approx(0.0166887, abs=1e-7)
    # From before the book: measured from the starting value 9,900: 15,200 - 9,900 - 5,000 = 300.
    assert book.period_pnl(value, flows, pd.Timestamp("2023-12-01"), 9_900)[:2] == (300, None)
