"""quant.metrics on hand-computed values (the PITFALLS cases) and against quantstats / empyrical."""
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from quant import metrics
from tests.conftest import MARKETDATA


def series(values, dates):
    return pd.Series(values, index=pd.DatetimeIndex(dates), dtype="float64")


# --- BR-01: the high-water mark starts at the invested capital -------------------------------------

BR01 = series([-0.10, -0.111111111111, -0.0625, 0.04, 0.0512820512821], pd.bdate_range("2024-01-02", periods=5))


def test_br01_max_drawdown_counts_a_loss_on_the_first_day():
    # Equity 0.90, 0.80, 0.75, 0.78, 0.82 from 1.00: 0.75 / 1.00 - 1 = -25% (the bug seeds the mark at 0.90: -16.67%).
    assert metrics.max_drawdown(BR01) == pytest.approx(-0.25, abs=1e-9)
    np.testing.assert_allclose(metrics.drawdown(BR01).to_numpy(), [-0.10, -0.20, -0.25, -0.22, -0.18], atol=1e-9)


def test_br01_drawdown_dates_say_the_loss_began_at_the_start():
    details = metrics.drawdown_details(BR01)
    assert details["peak"] is None  # the mark is the starting equity, before the first bar
    assert details["trough"] == pd.Timestamp("2024-01-04")
    assert details["recovery"] is None


def test_drawdown_dates_of_a_loss_after_a_gain_and_its_recovery():
    # Equity 1.10, 0.99, 1.045, 1.1495: mark 1.10 on 01-02, trough 0.99 on 01-03 (-10%), back above on 01-05.
    r = series([0.10, -0.10, 0.0555555555556, 0.10], pd.bdate_range("2024-01-02", periods=4))
    details = metrics.drawdown_details(r)
    assert details["max_drawdown"] == pytest.approx(-0.10)
    assert (details["peak"], details["trough"], details["recovery"]) == (
        pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-05"))


# --- BR-02: CAGR in calendar years -----------------------------------------------------------------

def test_br02a_half_a_year_of_weekly_returns():
    # 1.006^26 = 1.16828; start one week before the first return: 175 + 7.02 days = 182.02 days;
    # 1.16828 ^ (365.25 / 182.02) - 1 = 36.63% (the bug's 175/52 "years" gives 4.73%).
    r = series([0.006] * 26, pd.date_range("2025-02-23", "2025-08-17", freq="W-SUN"))
    assert metrics.total_return(r) == pytest.approx(1.006**26 - 1)
    value = metrics.cagr_from_returns(r, periods_per_year=52)
    assert value == pytest.approx((1.006**26) ** (365.25 / (175 + 365.25 / 52)) - 1, rel=1e-12)
    assert 0.36 < value < 0.39


def test_br02b_a_doubling_within_one_year():
    # 100 on 2022-01-03, 200 on 2022-12-30: 361 days; 2 ^ (365.25 / 361) - 1 = 101.6% (bug: 62.2%).
    assert metrics.cagr(200.0, 100.0, (dt.date(2022, 12, 30) - dt.date(2022, 1, 3)).days) == pytest.approx(1.01639, abs=1e-5)


def test_br02c_two_years_of_ten_percent():
    # 100 -> 121 over 2019-12-31..2021-12-31 (731 days): 1.21 ^ (365.25 / 731) - 1 = 9.99%.
    r = series([0.10, 0.10], ["2020-12-31", "2021-12-31"])
    assert metrics.cagr_from_returns(r, start="2019-12-31") == pytest.approx(1.21 ** (365.25 / 731) - 1)
    assert metrics.cagr_from_returns(r, start="2019-12-31") == pytest.approx(0.0999, abs=1e-4)


def test_a_wiped_out_account_has_a_cagr_of_minus_100_percent():
    assert metrics.cagr(0.0, 100.0, 365) == -1.0
    assert math.isnan(metrics.cagr(110.0, 100.0, 0))


# --- BR-03: annualise with the declared frequency ----------------------------------------------------

BR03 = series([0.010, -0.005, 0.007, -0.002, 0.004, -0.001, 0.003, -0.006, 0.008, -0.003],
              pd.bdate_range("2024-01-02", periods=10))


def test_br03_sharpe_on_a_business_day_index_is_annualised_by_252():
    # mean 0.0015, std 0.0056814 -> 0.26402 per day x sqrt(252) = 4.1912 (bug: 0.2640).
    assert metrics.sharpe(BR03) == pytest.approx(4.1912, abs=1e-4)


def test_a_risk_free_rate_is_de_annualised_geometrically():
    # rf 5% a year -> 1.05 ^ (1/252) - 1 = 0.000193630 a day, subtracted before the ratio.
    daily = 1.05 ** (1 / 252) - 1
    expected = (BR03 - daily).mean() / (BR03 - daily).std(ddof=1) * math.sqrt(252)
    assert metrics.sharpe(BR03, risk_free=0.05) == pytest.approx(expected, rel=1e-12)
    assert daily == pytest.approx(0.00019363, abs=1e-8)


# --- BR-06: ddof=1 ----------------------------------------------------------------------------------

def test_br06_volatility_uses_the_sample_standard_deviation():
    # 11 monthly returns: std (ddof=1) 1.3787% x sqrt(12) = 4.776% (ddof=0 would give 4.554%).
    r = pd.Series([0.84, 1.52, -2.21, 1.09, 1.60, -1.20, 0.84, 0.81, 1.66, 0.34, 2.75]) / 100
    assert metrics.volatility(r, periods_per_year=12) == pytest.approx(0.04776, abs=5e-6)


def test_br06_rolling_21_day_volatility_is_ddof_1():
    r = series(np.linspace(-0.02, 0.02, 21) * np.tile([1, -1, 1], 7), pd.bdate_range("2024-01-02", periods=21))
    rolled = metrics.rolling_volatility(r, 21)
    assert rolled.iloc[:20].isna().all()
    assert rolled.iloc[20] == pytest.approx(r.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert rolled.iloc[20] / (r.std(ddof=0) * math.sqrt(252)) == pytest.approx(math.sqrt(21 / 20))


# --- BR-07: a zero close is missing ------------------------------------------------------------------

BR07_CLOSES = series([10.00, 10.20, 0.00, 10.10, 10.30], pd.bdate_range("2024-03-04", periods=5))


def test_br07_a_zero_price_gives_a_missing_return_not_minus_100_percent():
    # +2.000%, none (documented: missing), 10.10 / 10.20 - 1 = -0.980%, 10.30 / 10.10 - 1 = +1.980%.
    r = metrics.returns_from_prices(BR07_CLOSES)
    assert math.isnan(r.iloc[0]) and math.isnan(r.iloc[2])
    np.testing.assert_allclose(r.iloc[[1, 3, 4]].to_numpy(), [0.02, 10.10 / 10.20 - 1, 10.30 / 10.10 - 1])


def test_br07_metrics_over_a_zero_price_stay_finite():
    summary = metrics.summarize(metrics.returns_from_prices(BR07_CLOSES))
    assert summary["values"]["total_return"] == pytest.approx(0.03, abs=1e-12)  # 10.30 / 10.00 - 1
    assert summary["values"]["max_drawdown"] == pytest.approx(10.10 / 10.20 - 1)  # -0.980%
    json.dumps(summary, default=str, allow_nan=False)  # no NaN or Infinity anywhere


# --- the NaN policy: None with a reason ----------------------------------------------------------------

def test_summarize_turns_undefined_metrics_into_none_with_a_reason():
    flat = series([0.001] * 5, pd.bdate_range("2024-01-02", periods=5))
    summary = metrics.summarize(flat, trade_pnls=[10.0, 5.0])
    assert summary["values"]["sharpe"] is None
    assert summary["undefined"]["sharpe"] == "returns do not vary (zero volatility)"
    assert summary["undefined"]["sortino"] == "no losing period"
    assert summary["undefined"]["calmar"] == "no drawdown"
    assert summary["undefined"]["profit_factor"] == "no losing trade"
    assert summary["values"]["win_rate"] == 1.0
    json.dumps(summary, default=str, allow_nan=False)


def test_summarize_of_nothing_is_all_none():
    summary = metrics.summarize(pd.Series(dtype="float64"))
    assert set(summary["undefined"]) == set(summary["values"])
    assert set(summary["undefined"].values()) == {"no returns in the period"}


# --- per-trade, turnover, exposure, VaR ----------------------------------------------------------------

def test_win_rate_and_profit_factor_per_trade():
    # 3 wins of 4 closed trades (a break-even is not a win); (100 + 50) / 30 = 5.0.
    pnls = [100.0, -30.0, 50.0, 0.0]
    assert metrics.win_rate(pnls) == 0.5
    assert metrics.profit_factor(pnls) == 5.0
    assert math.isnan(metrics.win_rate([]))


def test_turnover_of_buying_a_book_once_a_year():
    # Buy 100% on day 1 and sell it on day 252: mean traded/equity = 2 / 252, x 252 / 2 = 1.0 a year.
    traded = np.zeros(252)
    traded[0] = traded[-1] = 1000.0
    assert metrics.turnover(traded, np.full(252, 1000.0)) == pytest.approx(1.0)


def test_exposure_is_the_share_of_periods_invested():
    assert metrics.exposure([0.0, 0.5, -0.3, 0.0]) == 0.5


def test_var_and_cvar_on_twenty_returns():
    # -10..+9 %: 5th percentile (linear) = -10 + 0.95 = -9.05%; tail k = int(19 x 0.05) = 0 -> mean(-10%).
    r = pd.Series(np.arange(-10, 10) / 100.0)
    assert metrics.value_at_risk(r) == pytest.approx(-0.0905)
    assert metrics.conditional_value_at_risk(r) == pytest.approx(-0.10)


def test_monthly_table_compounds_within_each_month():
    # Jan: 1.01 x 1.02 - 1 = 3.02%; Feb: -1%; the year 1.0302 x 0.99 - 1 = 1.9898%.
    r = series([0.01, 0.02, -0.01], ["2024-01-02", "2024-01-31", "2024-02-01"])
    table = metrics.monthly_table(r)
    assert table.loc[2024, 1] == pytest.approx(0.0302)
    assert table.loc[2024, 2] == pytest.approx(-0.01)
    assert math.isnan(table.loc[2024, 3])
    assert table.loc[2024, "year"] == pytest.approx(1.0302 * 0.99 - 1)


def test_rolling_sharpe_skips_missing_returns():
    r = series([0.01, np.nan, -0.005, 0.007, 0.002], pd.bdate_range("2024-01-02", periods=5))
    rolled = metrics.rolling_sharpe(r, window=3)
    valid = r.dropna()
    expected = valid.iloc[1:].mean() / valid.iloc[1:].std(ddof=1) * math.sqrt(252)
    assert math.isnan(rolled.iloc[1]) and math.isnan(rolled.iloc[2])
    assert rolled.iloc[4] == pytest.approx(expected)


# --- against quantstats and empyrical on a real series -------------------------------------------------

@pytest.fixture(scope="module")
def aapl_returns():
    path = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    bars = pd.read_parquet(path, columns=["ticker", "date", "adjusted_close"], filters=[("ticker", "==", "AAPL")])
    closes = bars.set_index(pd.DatetimeIndex(bars["date"]))["adjusted_close"].loc["2015":"2019"]
    return metrics.returns_from_prices(closes).dropna()


def test_it_agrees_with_empyrical_where_conventions_agree(aapl_returns):
    empyrical = pytest.importorskip("empyrical")
    r = aapl_returns
    assert metrics.sharpe(r) == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-10)
    assert metrics.sortino(r) == pytest.approx(empyrical.sortino_ratio(r), rel=1e-10)
    assert metrics.volatility(r) == pytest.approx(empyrical.annual_volatility(r), rel=1e-10)
    assert metrics.max_drawdown(r) == pytest.approx(empyrical.max_drawdown(r), rel=1e-10)
    assert metrics.value_at_risk(r) == pytest.approx(empyrical.value_at_risk(r), rel=1e-10)
    assert metrics.conditional_value_at_risk(r) == pytest.approx(empyrical.conditional_value_at_risk(r), rel=1e-10)
    # empyrical's CAGR counts periods (n / 252 years); ours counts calendar days. Over whole years of
    # sessions they land within a few basis points of each other, but are not equal.
    assert metrics.cagr_from_returns(r) == pytest.approx(empyrical.cagr(r), abs=5e-3)


def test_it_agrees_with_quantstats_where_conventions_agree(aapl_returns):
    qs = pytest.importorskip("quantstats")
    r = aapl_returns
    assert metrics.sharpe(r) == pytest.approx(qs.stats.sharpe(r), rel=1e-10)
    assert metrics.sharpe(r, risk_free=0.03) == pytest.approx(qs.stats.sharpe(r, rf=0.03), rel=1e-10)
    assert metrics.sortino(r) == pytest.approx(qs.stats.sortino(r), rel=1e-10)
    assert metrics.volatility(r) == pytest.approx(qs.stats.volatility(r), rel=1e-10)
    assert metrics.max_drawdown(r) == pytest.approx(qs.stats.max_drawdown(r), rel=1e-10)
    # quantstats' win rate leaves flat periods out; ours counts a break-even as not a win, so compare
    # on the periods that moved.
    assert metrics.win_rate(r[r != 0]) == pytest.approx(qs.stats.win_rate(r), rel=1e-10)
    assert metrics.profit_factor(r) == pytest.approx(qs.stats.profit_factor(r), rel=1e-10)
    ours = metrics.monthly_table(r).drop(columns="year")
    theirs = qs.stats.monthly_returns(r, compounded=True).drop(columns="EOY")
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(dtype=float), atol=1e-12)


# --- returns of a panel, forward returns (the scanner's replay) -----------------------------------------------

def test_returns_from_prices_of_a_panel_are_each_column_s_returns():
    panel = pd.DataFrame({"Z": BR07_CLOSES.to_numpy(), "Y": [20.0, 21.0, 22.05, np.nan, 22.05]},
                         index=BR07_CLOSES.index)
    r = metrics.returns_from_prices(panel)
    pd.testing.assert_series_equal(r["Z"], metrics.returns_from_prices(BR07_CLOSES), check_names=False)
    # Y: +5%, +5%, missing, then 22.05 / 22.05 - 1 = 0 over the last valid price.
    np.testing.assert_allclose(r["Y"].to_numpy()[[1, 2, 4]], [0.05, 0.05, 0.0], atol=1e-12)


def test_forward_returns_by_hand_and_br07():
    closes = series([10.0, 11.0, 0.0, 12.0, 12.6], pd.bdate_range("2024-03-04", periods=5))
    ahead = metrics.forward_returns(closes, 2)
    # Row 0: 10 -> row 2 is a zero close (missing): the last valid price on or before it, 11 -> +10%.
    # Row 1: 11 -> 12, +9.09%. Row 2: no price of its own -> NaN. Row 3: past the last row -> pending (NaN).
    np.testing.assert_allclose(ahead.to_numpy()[:2], [0.10, 12 / 11 - 1], atol=1e-12)
    assert ahead.iloc[2:].isna().all()
    one = metrics.forward_returns(closes, 1)
    # Row 1 -> row 2 carries 11 (the zero is not a price): 0%, never -100%. Row 3: 12.6/12 - 1 = +5%.
    assert one.iloc[1] == 0.0 and one.iloc[3] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="periods must be a positive integer"):
        metrics.forward_returns(closes, 0)
