"""Backtest runs through the service on real bars: point-in-time universes, the survivorship flag, artifacts,
errors naming the field, and numbers checked against an independent path from the raw file."""
import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from marketdata.models import PriceBar
from quant import backtest, strategies
from strategies import services
from strategies.models import BacktestRun

from .conftest import adjusted_closes

pytestmark = pytest.mark.django_db

START, END = dt.date(2014, 1, 2), dt.date(2016, 12, 30)


def start(capture, **values):
    with capture(execute=True):
        run = services.start_backtest(**values)
    run.refresh_from_db()
    return run


def test_momentum_over_sp500_uses_each_days_members(desk, django_capture_on_commit_callbacks):
    run = start(django_capture_on_commit_callbacks, strategy="momentum", params={"top_n": 2, "lookback_months": 6},
                universe="SP500", start=START, end=END)
    assert run.status == "success", run.error
    assert not run.survivorship_biased and "point-in-time" in run.universe_note
    trades = services.read_artifact(run.trades_path)
    # TSLA has prices but joined the index only in 2020; AAL joined on 2015-03-23 (decided that day or later).
    assert "XNYS:TSLA" not in set(trades["name"])
    aal = trades[trades["name"] == "XNYS:AAL"]
    assert len(aal) and (aal["decided"] >= pd.Timestamp("2015-03-23")).all()
    assert run.first_bar == dt.date(2014, 1, 2) and run.last_bar == dt.date(2016, 12, 30)
    assert run.code_version and set(run.timings) >= {"load", "strategy", "engine", "benchmark", "bias_check"}


def test_the_run_equals_quant_on_the_raw_file(desk, django_capture_on_commit_callbacks):
    # Independent data path: the vendor's adjusted closes read from the file and the membership intervals read
    # from the CSV by hand, through quant only; the run went through ingest, panels and load_panel.
    run = start(django_capture_on_commit_callbacks, strategy="momentum", params={"top_n": 2, "lookback_months": 6},
                universe="SP500", start=START, end=END, engine={"commission_bps": 10, "commission_min": 1})
    close = adjusted_closes(desk).loc[: pd.Timestamp(END)]
    close = close.loc[pd.Timestamp(START) - pd.Timedelta(days=services.WARMUP_DAYS):]
    intervals = pd.read_csv(desk["members"], keep_default_na=False)
    members = pd.DataFrame(False, index=close.index, columns=close.columns)
    for row in intervals.itertuples():
        inside = (close.index >= pd.Timestamp(row.start_date)) & (
            (close.index < pd.Timestamp(row.end_date)) if row.end_date else True)
        members.loc[inside, f"XNYS:{row.ticker}"] = True
    market = strategies.Market(close=close, members=members)
    strategy = strategies.get("momentum")
    targets = services.from_start(strategy.targets(market, strategy.parse({"top_n": 2, "lookback_months": 6})),
                                  close.index[close.index >= pd.Timestamp(START)][0])
    config = backtest.Config(costs=backtest.Costs(commission_bps=10, commission_min=1, slippage_bps=5))
    expected = backtest.run(targets, close.loc[pd.Timestamp(START):], config=config)
    equity = services.read_artifact(run.equity_path)
    np.testing.assert_allclose(equity["equity"].to_numpy(), expected.equity.to_numpy(), rtol=1e-9)
    assert run.metrics["strategy"]["values"]["sharpe"] == pytest.approx(expected.summary()["values"]["sharpe"], rel=1e-9)
    json.dumps(run.metrics, allow_nan=False)


def test_todays_members_over_the_past_are_flagged_as_survivorship_biased(desk, django_capture_on_commit_callbacks):
    run = start(django_capture_on_commit_callbacks, strategy="buy_and_hold", universe="SP500:current",
                start=START, end=END)
    assert run.status == "success", run.error
    assert run.survivorship_biased
    assert "today's members" in run.universe_note and "survivorship-biased" in run.universe_note
    trades = services.read_artifact(run.trades_path)
    # AAL, UAL and HCA joined in 2015 but are members on 2016-12-30: bought on the first day anyway.
    assert {"XNYS:AAL", "XNYS:UAL", "XNYS:HCA"} <= set(trades["name"])
    point_in_time = start(django_capture_on_commit_callbacks, strategy="buy_and_hold", universe="SP500",
                          start=START, end=END)
    assert "XNYS:AAL" not in set(services.read_artifact(point_in_time.trades_path)["name"])


def test_a_point_in_time_universe_mostly_without_bars_is_flagged(desk, django_capture_on_commit_callbacks):
    # The whole real membership file (some 800 names over the years) against bars for 8 of them: the members
    # without bars are mostly the ones that left, so the run is, in effect, over survivors.
    from marketdata.panels import refresh_panels
    from marketdata.universes import import_memberships

    from .conftest import INTERVALS

    import_memberships(code="SP500", path=INTERVALS)
    refresh_panels()  # the manifest now lists the ~800 instruments the file created, without bars
    run = start(django_capture_on_commit_callbacks, strategy="buy_and_hold", universe="SP500", start=START, end=END)
    assert run.status == "success", run.error
    assert run.survivorship_biased and len(run.universe_note) <= 200
    unpriced, members = map(int, re.search(r"but (\d+) of (\d+) members", run.universe_note).groups())
    assert members > 500 and unpriced == members - 7  # AAPL, MSFT, JNJ, NVDA, AAL, UAL, HCA (TSLA joined in 2020)


def test_a_symbol_list_is_flagged_and_the_benchmark_is_its_buy_and_hold(desk, django_capture_on_commit_callbacks):
    run = start(django_capture_on_commit_callbacks, strategy="moving_average", params={"fast": 20, "slow": 100},
                universe="AAPL, msft", start=START, end=END, engine={"fill": "open"})
    assert run.status == "success", run.error
    assert run.survivorship_biased and "picked by hand" in run.universe_note
    assert run.instruments == 2
    equity = services.read_artifact(run.equity_path)
    close = adjusted_closes(desk)[["XNYS:AAPL", "XNYS:MSFT"]].loc[pd.Timestamp(START):pd.Timestamp(END)]
    # The benchmark: half of 100,000 in each at the second bar's open, costs paid, then held.
    assert equity["benchmark_equity"].iloc[0] == 100_000.0
    assert equity["benchmark_equity"].iloc[-1] < 100_000 * (close.iloc[-1] / close.iloc[1]).mean()
    assert run.metrics["bias_check"]["delayed_sharpe"] is not None


def test_a_trend_started_mid_way_holds_what_the_strategy_already_held(desk, django_capture_on_commit_callbacks):
    # AAPL's 20-day average was above its 100-day one on 2016-06-01 (decided before the start): bought on day 2.
    run = start(django_capture_on_commit_callbacks, strategy="moving_average",
                params={"fast": 20, "slow": 100, "mode": "filter"}, universe="AAPL", start=dt.date(2016, 9, 1), end=END)
    trades = services.read_artifact(run.trades_path)
    assert trades["date"].iloc[0] == pd.Timestamp("2016-09-02")
    assert trades["decided"].iloc[0] == pd.Timestamp("2016-09-01")


def test_whole_shares_log_orders_below_one_share(desk, django_capture_on_commit_callbacks):
    # 100 of capital over the 7 members of SP500:current: a slot of 100 / 7 = 14.29 per name, filled at the
    # second bar's close. A name priced above 14.29 rounds to 0 shares: no order, "below one share" (BR-21).
    run = start(django_capture_on_commit_callbacks, strategy="buy_and_hold", universe="SP500:current", start=START,
                end=END, engine={"capital": 100, "fractional": False, "commission_min": 0})
    assert run.status == "success", run.error
    fill = adjusted_closes(desk).loc["2014-01-03"].drop("XNYS:TSLA")
    slot = 100 / 7
    below = sorted(name for name, price in fill.items() if slot / price < 1)
    assert below  # most of these names cost more than 14.29 a share
    assert sorted(entry["name"] for entry in run.log) == below
    assert all(entry["reason"].startswith("below one share") for entry in run.log)
    trades = services.read_artifact(run.trades_path)
    expected = {name: np.floor(slot / price) for name, price in fill.items() if slot / price >= 1}
    assert dict(zip(trades["name"], trades["shares"])) == pytest.approx(expected)


@pytest.mark.parametrize("values, loc, message", [
    ({"strategy": "nope"}, ("strategy",), "unknown strategy 'nope'"),
    ({"strategy": "momentum", "params": {"top_n": 0}}, ("params", "top_n"), "greater than or equal to 1"),
    ({"strategy": "moving_average", "params": {"fast": 100, "slow": 50}}, ("params",), "fast (100) must be shorter"),
    ({"strategy": "momentum", "params": {"top": 3}}, ("params", "top"), "Extra inputs are not permitted"),
    ({"strategy": "momentum", "universe": "NOPE500:current"}, ("universe",), "unknown universe 'NOPE500'"),
    ({"strategy": "momentum", "universe": "ZZZZ"}, ("universe",), "'ZZZZ' is neither a universe (known: SP500)"),
    ({"strategy": "momentum", "start": dt.date(2016, 1, 1), "end": dt.date(2015, 1, 1)}, ("start",), "is after end"),
    ({"strategy": "momentum", "start": dt.date(2020, 1, 1), "end": dt.date(2020, 6, 1)}, ("start",),
     "2020-01-01..2020-06-01 is outside the stored data (2013-01-02..2016-12-30)"),
    ({"strategy": "momentum", "engine": {"slippage_bps": -1}}, ("slippage_bps",), "slippage_bps must be a number >= 0"),
    ({"strategy": "momentum", "engine": {"fill": "vwap"}}, ("fill",), "fill must be one of open, close"),
    ({"strategy": "dual_momentum", "params": {"defensive": "IEF"}}, ("params", "defensive"), "'IEF' is neither"),
])
def test_bad_requests_name_the_field_and_write_nothing(desk, values, loc, message):
    with pytest.raises(services.BacktestRequestError) as caught:
        services.start_backtest(**values)
    assert caught.value.loc == loc
    assert message in caught.value.message
    assert not BacktestRun.objects.exists()


def test_the_default_dates_are_the_span_of_the_universes_own_exchange(desk, make_bars):
    # ASX data running on to 2024 must not stretch a US run past the US data (it would hold cash for years).
    from marketdata.panels import refresh_panels

    make_bars("BHP", "XASX", [(dt.date(2024, 5, 30), 45, 46, 44, 45.5, 1000), (dt.date(2024, 5, 31), 45, 46, 44, 45, 900)])
    # One member's history reaching back before the rest must not start the run where it alone trades.
    make_bars("AAPL", "XNYS", [(dt.date(2012, 6, 1), 20, 21, 19, 20.5, 1000)])
    refresh_panels()
    assert services.data_span() == (dt.date(2012, 6, 1), dt.date(2024, 5, 31))
    # Momentum looks back: it starts WARMUP_DAYS (800) after the day half the members have bars (2013-01-02),
    # so its lookbacks are warm for all of them, not only for AAPL; buy and hold needs no history.
    request = services.validate_request(strategy="momentum", universe="SP500")
    assert (request.start, request.end) == (dt.date(2015, 3, 13), dt.date(2016, 12, 30))
    assert services.validate_request(strategy="buy_and_hold", universe="SP500").start == dt.date(2013, 1, 2)
    assert services.validate_request(strategy="buy_and_hold", universe="AAPL").start == dt.date(2012, 6, 1)
    assert services.validate_request(strategy="buy_and_hold", universe="BHP").end == dt.date(2024, 5, 31)
    with pytest.raises(services.BacktestRequestError, match="start 2020-01-02 is after end 2016-12-30"):
        services.validate_request(strategy="momentum", universe="SP500", start=dt.date(2020, 1, 2))


def test_a_run_that_breaks_is_recorded_as_failed_with_the_reason(desk, django_capture_on_commit_callbacks):
    request = services.validate_request(strategy="momentum", universe="SP500", start=START, end=END)
    run = services.create_backtest(request)
    PriceBar.objects.filter(date=dt.date(2015, 6, 1)).delete()  # the panels are now stale
    run = services.execute_backtest(run)
    assert run.status == "failed"
    assert "run `manage.py panels --exchange XNYS`" in run.error
    assert run.finished_at is not None


def test_from_start_carries_the_held_state_onto_the_first_bar():
    days = pd.bdate_range("2024-01-01", periods=5)
    targets = pd.DataFrame({"A": [0.5, np.nan, 0.0], "B": [np.nan, 0.25, np.nan]}, index=days[[0, 1, 3]])
    out = services.from_start(targets, days[2])
    # On the start bar: A still 0.5 (its last target), B 0.25; A's exit on day 3 follows.
    assert out.loc[days[2]].tolist() == [0.5, 0.25]
    assert out.loc[days[3], "A"] == 0.0 and np.isnan(out.loc[days[3], "B"])


def test_dual_momentum_brings_its_defensive_asset_but_the_benchmark_holds_the_universe(
        desk, django_capture_on_commit_callbacks):
    # JNJ is the defensive asset of a universe of AAPL and NVDA: traded by the strategy, not in the benchmark.
    run = start(django_capture_on_commit_callbacks, strategy="dual_momentum", universe="AAPL,NVDA",
                params={"lookback_months": 3, "defensive": "JNJ", "absolute_threshold": 0.05}, start=START, end=END)
    assert run.status == "success", run.error
    trades = services.read_artifact(run.trades_path)
    assert "XNYS:JNJ" in set(trades["name"])
    equity = services.read_artifact(run.equity_path)
    close = adjusted_closes(desk)[["XNYS:AAPL", "XNYS:NVDA"]].loc[pd.Timestamp(START):pd.Timestamp(END)]
    # Half of 100,000 in each at the second bar's close, 5 bps commission and 5 bps slippage on 50,000 each.
    shares = 50_000 / close.iloc[1]
    expected = (shares * close.iloc[-1]).sum() - 2 * (25.0 + 25.0)
    assert equity["benchmark_equity"].iloc[-1] == pytest.approx(expected, rel=1e-12)


def test_a_member_that_leaves_and_stops_trading_is_sold_at_its_last_close(desk, django_capture_on_commit_callbacks):
    # Make HCA a delisting: its bars end on 2015-12-31 and its membership on 2016-01-04 (the real HCA lives on;
    # this test cuts it short). Momentum holding all members must drop it and close it at its last close.
    from marketdata.models import IndexMembership
    from marketdata.panels import refresh_panels

    PriceBar.objects.filter(instrument__symbol="HCA", date__gt=dt.date(2015, 12, 31)).delete()
    IndexMembership.objects.filter(instrument__symbol="HCA").update(end=dt.date(2016, 1, 4))
    refresh_panels()
    run = start(django_capture_on_commit_callbacks, strategy="momentum", universe="SP500",
                params={"top_n": 7, "lookback_months": 3}, start=dt.date(2015, 6, 1), end=END)
    assert run.status == "success", run.error
    trades = services.read_artifact(run.trades_path)
    hca = trades[trades["name"] == "XNYS:HCA"]
    assert len(hca) and hca["date"].iloc[-1] == pd.Timestamp("2016-02-01")  # the January month-end's order
    last_close = adjusted_closes(desk).loc["2015-12-31", "XNYS:HCA"]
    assert hca["price"].iloc[-1] == pytest.approx(last_close)
    # The 2015-12-31 rebalance could not trade it (no price on 2016-01-04); January's month-end, with HCA out
    # of the index, closes it at the last close it had.
    assert [(e["date"], e["reason"]) for e in run.log if e["name"] == "XNYS:HCA"] == [
        ("2016-01-04", "no price on 2016-01-04: not traded"),
        ("2016-02-01", f"no price on 2016-02-01: closed at the last valid close {last_close:.6g}"),
    ]
    assert hca["shares"].sum() == pytest.approx(0.0, abs=1e-9)
