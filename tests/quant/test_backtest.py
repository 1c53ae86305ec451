"""quant.backtest on hand-computed cases: two assets over three days, costs, shorts, drift, timing, BR-19/20/21."""
import math

import numpy as np
import pandas as pd
import pytest

from quant import backtest
from quant.backtest import BacktestError, Config, Costs

FREE = Costs(commission_bps=0.0, commission_min=0.0, slippage_bps=0.0)
DAYS = pd.bdate_range("2024-01-02", periods=3)
CLOSE = pd.DataFrame({"A": [10.0, 11.0, 12.0], "B": [20.0, 18.0, 19.0]}, index=DAYS)


def targets(rows, index, columns=("A", "B")):
    return pd.DataFrame(rows, index=pd.DatetimeIndex(index), columns=list(columns), dtype="float64")


# --- two assets, three days ---------------------------------------------------------------------

def test_two_assets_three_days_without_costs():
    # Decided on day 0, filled at day 1's closes: A 500 / 11 = 45.4545 shares, B 500 / 18 = 27.7778.
    # Day 2: 45.4545 x 12 + 27.7778 x 19 = 545.4545 + 527.7778 = 1,073.2323.
    result = backtest.run(targets([[0.5, 0.5]], DAYS[:1]), CLOSE, config=Config(capital=1000.0, costs=FREE))
    np.testing.assert_allclose(result.holdings.iloc[1], [500 / 11, 500 / 18])
    np.testing.assert_allclose(result.equity, [1000.0, 1000.0, 500 / 11 * 12 + 500 / 18 * 19])
    assert result.equity.iloc[2] == pytest.approx(1073.2323, abs=1e-4)
    np.testing.assert_allclose(result.returns, [0.0, 0.0, 0.0732323], atol=1e-7)
    assert result.cash.iloc[2] == pytest.approx(0.0, abs=1e-9)
    assert list(result.trades["date"]) == [DAYS[1], DAYS[1]]
    assert list(result.trades["decided"]) == [DAYS[0], DAYS[0]]


def test_holdings_drift_between_rebalances():
    # No daily re-weighting: on day 2 A is 545.4545 / 1,073.2323 = 50.823% of equity, not 50%.
    result = backtest.run(targets([[0.5, 0.5]], DAYS[:1]), CLOSE, config=Config(capital=1000.0, costs=FREE))
    assert result.weights.loc[DAYS[2], "A"] == pytest.approx(545.4545 / 1073.2323, abs=1e-6)
    assert result.weights.loc[DAYS[2], "A"] == pytest.approx(0.50823, abs=1e-5)
    assert len(result.trades) == 2  # one order per name, once


def test_costs_minimum_commission_and_slippage_come_out_of_cash_once():
    # Each order: notional 500; commission max(1.00, 10 bps x 500 = 0.50) = 1.00; slippage 5 bps x 500 = 0.25.
    # Cash 1,000 - 1,000 - 2 x 1.25 = -2.50; day 2 equity 1,073.2323 - 2.50 = 1,070.7323.
    costs = Costs(commission_bps=10.0, commission_min=1.0, slippage_bps=5.0)
    result = backtest.run(targets([[0.5, 0.5]], DAYS[:1]), CLOSE, config=Config(capital=1000.0, costs=costs))
    np.testing.assert_allclose(result.trades["commission"], [1.0, 1.0])
    np.testing.assert_allclose(result.trades["slippage"], [0.25, 0.25])
    np.testing.assert_allclose(result.trades["fill_price"], [11 * 1.0005, 18 * 1.0005])
    assert result.cash.iloc[1] == pytest.approx(-2.5)
    assert result.equity.iloc[1] == pytest.approx(997.5)
    assert result.equity.iloc[2] == pytest.approx(1070.7323, abs=1e-4)
    assert result.summary()["values"]["costs"] == pytest.approx(2.5)


def test_bps_commission_above_the_minimum():
    # 100,000 capital: 50,000 a name; 10 bps = 50.00 > the 1.00 minimum.
    costs = Costs(commission_bps=10.0, commission_min=1.0, slippage_bps=0.0)
    result = backtest.run(targets([[0.5, 0.5]], DAYS[:1]), CLOSE, config=Config(capital=100_000.0, costs=costs))
    np.testing.assert_allclose(result.trades["commission"], [50.0, 50.0])


def test_a_short_position_gains_when_the_price_falls_and_loses_when_it_rises():
    # A -50% at 11: -45.4545 shares, cash 1,000 + 500 = 1,500; day 2: 1,500 - 45.4545 x 12 = 954.5455 (-4.545%).
    result = backtest.run(targets([[-0.5, np.nan]], DAYS[:1]), CLOSE, config=Config(capital=1000.0, costs=FREE))
    assert result.holdings.loc[DAYS[1], "A"] == pytest.approx(-500 / 11)
    assert result.cash.iloc[1] == pytest.approx(1500.0)
    assert result.equity.iloc[2] == pytest.approx(1500 - 500 / 11 * 12)
    assert result.returns.iloc[2] == pytest.approx(-0.0454545, abs=1e-7)
    assert result.weights.loc[DAYS[2], "A"] == pytest.approx(-545.4545 / 954.5455, abs=1e-6)
    # B -50% at 18 then 19: cash 1,500, -27.7778 x 19 = -527.78 -> 972.22 (a loss, -2.78%).
    short_b = backtest.run(targets([[np.nan, -0.5]], DAYS[:1]), CLOSE, config=Config(capital=1000.0, costs=FREE))
    assert short_b.equity.iloc[2] == pytest.approx(1500 - 500 / 18 * 19)


def test_a_nan_target_leaves_the_name_untouched():
    # Day 0: A and B 50%; day 1: A to 0, B NaN (kept). Only A trades on day 2, at 12: B keeps 27.7778 shares.
    t = targets([[0.5, 0.5], [0.0, np.nan]], DAYS[:2])
    result = backtest.run(t, CLOSE, config=Config(capital=1000.0, costs=FREE))
    assert list(result.trades["name"]) == ["A", "B", "A"]
    assert result.holdings.loc[DAYS[2], "B"] == pytest.approx(500 / 18)
    assert result.holdings.loc[DAYS[2], "A"] == 0.0
    assert result.cash.iloc[2] == pytest.approx(500 / 11 * 12)  # A's 45.4545 shares sold at 12


def test_next_bar_timing_a_decision_never_earns_its_own_bar():
    # Decided on day 1 (close 11): filled at day 2's close 12, so the 10 -> 11 -> 12 moves are not earned.
    t = targets([[1.0, np.nan]], DAYS[1:2])
    result = backtest.run(t, CLOSE, config=Config(capital=1000.0, costs=FREE))
    np.testing.assert_allclose(result.equity, [1000.0, 1000.0, 1000.0])
    # At the next open instead: day 2 opens at 11.5, closes at 12: 1,000 x 12 / 11.5 = 1,043.48.
    opens = CLOSE.copy()
    opens.loc[DAYS[2], "A"] = 11.5
    at_open = backtest.run(t, CLOSE, open_=opens, config=Config(capital=1000.0, costs=FREE, fill="open"))
    assert at_open.equity.iloc[2] == pytest.approx(1000 * 12 / 11.5)
    # A decision on the last bar has no bar to execute on: dropped, and said so.
    last = backtest.run(targets([[1.0, np.nan]], DAYS[2:]), CLOSE, config=Config(capital=1000.0, costs=FREE))
    assert last.trades.empty and "after the last bar" in last.log["reason"].iloc[0]


def test_a_two_bar_delay_executes_one_bar_later():
    t = targets([[1.0, np.nan]], DAYS[:1])
    result = backtest.run(t, CLOSE, config=Config(capital=1000.0, costs=FREE, delay=2))
    assert list(result.trades["date"]) == [DAYS[2]]


# --- PITFALLS BR-20: same-bar execution -----------------------------------------------------------

BR20_CLOSES = [100.0, 101.0, 103.0, 102.0, 105.0, 104.0, 107.0, 106.0]


def br20():
    days = pd.bdate_range("2024-01-02", periods=len(BR20_CLOSES))
    close = pd.DataFrame({"X": BR20_CLOSES}, index=days)
    up = (close["X"] > close["X"].shift(1)).astype(float)
    up.iloc[0] = 0.0  # no signal without a yesterday
    return close, up.to_frame("X")


def test_br20_a_signal_from_close_t_earns_the_return_of_t_plus_1():
    # Signals 1,1,0,1,0,1,0 held one day later earn +1.9802%, -0.9709%, -0.9524%, -0.9346%:
    # 1.019802 x 0.990291 x 0.990476 x 0.990654 - 1 = -0.907%. Filled at the next open, which here is
    # the previous close (the case gives closes only: no overnight gap).
    close, signal = br20()
    opens = close.shift(1).fillna(close)
    result = backtest.run(signal, close, open_=opens, config=Config(capital=1.0, costs=FREE, fill="open"))
    assert result.equity.iloc[-1] - 1 == pytest.approx(-0.00907, abs=5e-6)
    expected = (103 / 101) * (102 / 103) * (104 / 105) * (106 / 107) - 1
    assert result.equity.iloc[-1] - 1 == pytest.approx(expected, rel=1e-12)
    # The look-ahead bug would be signal x same-day return: 1.01 x 1.019802 x 1.029412 x 1.028846 - 1 = +9.088%.
    assert result.equity.iloc[-1] - 1 != pytest.approx(0.09088, abs=1e-3)


def test_br20_with_next_close_fills_the_position_starts_one_bar_later_still():
    # Filled at the close of t+1, a signal of t earns t+2: s1 -> 103/102 (-0.9709%), s2 -> 105/102
    # (+2.9412%), s4 -> 107/104 (+2.8846%); s6 would earn t+8, past the data. 0.990291 x 1.029412 x 1.028846 - 1.
    close, signal = br20()
    result = backtest.run(signal, close, config=Config(capital=1.0, costs=FREE))
    expected = (102 / 103) * (105 / 102) * (107 / 104) - 1
    assert result.equity.iloc[-1] - 1 == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.048824, abs=1e-6)


# --- PITFALLS BR-21: whole shares ------------------------------------------------------------------

def whole_shares(weight, price=120.0, capital=1000.0):
    days = pd.bdate_range("2024-01-02", periods=2)
    close = pd.DataFrame({"X": [price, price]}, index=days)
    return backtest.run(pd.DataFrame({"X": [weight]}, index=days[:1]), close,
                        config=Config(capital=capital, costs=FREE, fractional=False))


def test_br21_a_target_below_one_share_places_no_order_and_says_why():
    # 5% of 1,000 = 50 / 120 = 0.417 shares -> 0 shares, no order, logged "below one share".
    result = whole_shares(0.05)
    assert result.trades.empty
    assert result.holdings.iloc[-1, 0] == 0
    assert result.log["reason"].str.startswith("below one share").tolist() == [True]
    assert "0.4167" in result.log["reason"].iloc[0]


def test_br21_fractional_targets_round_toward_zero():
    # 30%: 300 / 120 = 2.5 -> 2 shares costing 240.00, cash 760.00; -30%: -2.5 -> -2 shares.
    long = whole_shares(0.30)
    assert long.holdings.iloc[-1, 0] == 2 and long.cash.iloc[-1] == pytest.approx(760.0)
    assert long.trades["notional"].iloc[0] == pytest.approx(240.0)
    short = whole_shares(-0.30)
    assert short.holdings.iloc[-1, 0] == -2 and short.cash.iloc[-1] == pytest.approx(1240.0)


def test_br21_a_computed_3_9999_is_4_and_5_5_is_5():
    # 3.9999 x 120 = 479.988 of 1,000; 5.5 x 120 = 660 of 1,000.
    assert whole_shares(3.9999 * 120 / 1000).holdings.iloc[-1, 0] == 4
    assert whole_shares(5.5 * 120 / 1000).holdings.iloc[-1, 0] == 5


# --- PITFALLS BR-19: commission charged once ---------------------------------------------------------

def test_br19_a_fee_is_charged_once_on_the_fill_and_once_on_the_exit():
    # Balance 1,000; buy 10 units at 29,037.85 (notional 290,378.50) with 4 bps: fee 116.1514, once.
    # Equity after the fill 1,000 - 116.1514 = 883.8486 (bug: 767.6972); selling at the same price costs
    # another 116.1514: fees 232.3028, realised P&L -232.3028 (bug: -464.6056).
    days = pd.bdate_range("2024-01-02", periods=4)
    close = pd.DataFrame({"X": [29_037.85] * 4}, index=days)
    t = pd.DataFrame({"X": [290.3785, 0.0]}, index=days[:2])
    costs = Costs(commission_bps=4.0, commission_min=0.0, slippage_bps=0.0)
    result = backtest.run(t, close, config=Config(capital=1000.0, costs=costs))
    buy, sell = result.trades.itertuples()
    assert buy.shares == pytest.approx(10.0) and buy.notional == pytest.approx(290_378.50)
    assert buy.commission == pytest.approx(116.1514, abs=1e-4)
    assert result.equity.iloc[1] == pytest.approx(883.8486, abs=1e-4)
    assert result.cash.iloc[1] == pytest.approx(1000 - 290_378.50 - 116.1514, abs=1e-4)
    assert result.trades["commission"].sum() == pytest.approx(232.3028, abs=1e-4)
    [trip] = result.round_trips.itertuples()
    assert trip.pnl == pytest.approx(-232.3028, abs=1e-4)
    assert result.equity.iloc[-1] == pytest.approx(1000 - 232.3028, abs=1e-4)


# --- round trips, missing prices, errors ------------------------------------------------------------------

def test_round_trips_book_a_flip_as_a_close_and_an_open():
    # Long 100% of 1,000 at 10 (100 shares), flip to -100% at 11 (equity 1,100: -100 shares), close at 12.
    days = pd.bdate_range("2024-01-02", periods=4)
    close = pd.DataFrame({"X": [10.0, 10.0, 11.0, 12.0]}, index=days)
    t = pd.DataFrame({"X": [1.0, -1.0, 0.0]}, index=days[:3])
    result = backtest.run(t, close, config=Config(capital=1000.0, costs=FREE))
    trips = result.round_trips
    assert list(trips["side"]) == ["long", "short"]
    # The long: bought 100 at 10, sold at 11: +100. The short: sold 100 at 11, bought back at 12: -100.
    np.testing.assert_allclose(trips["pnl"], [100.0, -100.0])
    assert result.summary()["values"]["win_rate"] == 0.5


def test_a_name_without_a_price_is_not_traded_and_a_delisted_exit_uses_its_last_close():
    days = pd.bdate_range("2024-01-02", periods=4)
    close = pd.DataFrame({"X": [10.0, 10.0, 12.0, np.nan], "Y": [5.0, np.nan, 5.0, 5.0]}, index=days)
    t = pd.DataFrame({"X": [0.5, np.nan, 0.0], "Y": [0.5, np.nan, np.nan]}, index=days[:3])
    result = backtest.run(t, close, config=Config(capital=1000.0, costs=FREE))
    # Y has no price on day 1: not bought. X is sold on day 3 without a price: at its last close, 12.
    assert result.holdings.loc[days[1], "Y"] == 0
    assert "no price on 2024-01-03: not traded" in result.log["reason"].tolist()
    assert result.holdings.loc[days[3], "X"] == 0
    assert result.cash.iloc[-1] == pytest.approx(500 + 50 * 12)
    assert any("closed at the last valid close 12" in r for r in result.log["reason"])


def test_a_zero_price_is_missing_never_a_fill():
    days = pd.bdate_range("2024-01-02", periods=3)
    close = pd.DataFrame({"X": [10.0, 0.0, 11.0]}, index=days)
    result = backtest.run(pd.DataFrame({"X": [1.0]}, index=days[:1]), close, config=Config(capital=1000.0, costs=FREE))
    assert result.trades.empty
    assert np.isfinite(result.returns).all()


@pytest.mark.parametrize("bad, message", [
    (lambda: Config(fill="vwap"), "fill must be one of open, close"),
    (lambda: Config(delay=0), "delay must be a whole number of bars >= 1"),
    (lambda: Costs(slippage_bps=-1), "slippage_bps must be a number >= 0"),
    (lambda: backtest.run(targets([[1, 0]], ["2024-01-06"]), CLOSE), "target date 2024-01-06 is not a price date"),
    (lambda: backtest.run(targets([[1]], DAYS[:1], ["Z"]), CLOSE), "without prices: Z"),
    (lambda: backtest.run(targets([[1, 0]], DAYS[:1]), CLOSE, config=Config(fill="open")), "needs the opens"),
])
def test_bad_inputs_raise_naming_the_problem(bad, message):
    with pytest.raises(BacktestError, match=message):
        bad()


def test_summary_has_no_nan_or_infinity():
    import json

    result = backtest.run(targets([[0.5, 0.5]], DAYS[:1]), CLOSE, config=Config(capital=1000.0))
    summary = result.summary()
    json.dumps(summary, default=str, allow_nan=False)
    assert summary["values"]["win_rate"] is None and summary["undefined"]["win_rate"] == "no closed trades"


# --- the vectorised long/flat path equals the engine -------------------------------------------------------

@pytest.mark.parametrize("fill", ["close", "open"])
def test_long_flat_returns_match_the_engine_with_proportional_costs(fill):
    rng = np.random.default_rng(7)
    n = 300
    days = pd.bdate_range("2020-01-01", periods=n)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    opens = close * np.exp(rng.normal(0, 0.005, n))
    decided = (pd.Series(close).rolling(5).mean() > pd.Series(close).rolling(20).mean()).to_numpy()
    costs = Costs(commission_bps=7.0, commission_min=0.0, slippage_bps=3.0)
    # The engine: a target only where the signal changes (1 or 0), executed the next bar.
    change = np.concatenate([[decided[0]], decided[1:] != decided[:-1]])
    t = pd.DataFrame({"X": decided.astype(float)}, index=days)[change]
    frame = pd.DataFrame({"X": close}, index=days)
    result = backtest.run(t, frame, open_=pd.DataFrame({"X": opens}, index=days),
                          config=Config(capital=1.0, costs=costs, fill=fill))
    position = np.concatenate([[False], decided[:-1]])[:, None]
    fast = backtest.long_flat_returns(position, close, fill_prices=opens if fill == "open" else None,
                                      cost_rate=(7.0 + 3.0) / 1e4)
    np.testing.assert_allclose(fast[:, 0], result.returns.to_numpy(), atol=1e-12)
    assert len(result.trades) > 10
    assert math.isclose(np.prod(1 + fast[:, 0]), result.equity.iloc[-1], rel_tol=1e-10)
