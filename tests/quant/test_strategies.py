"""Each strategy on a small real slice of ../shared/marketdata, checked by an independent calculation here."""
import csv
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from quant import backtest, screens, strategies
from quant.backtest import Config, Costs
from quant.strategies import Market
from quant.strategies.breakout import BreakoutParams, breakout_setups, params_from_screen
from quant.strategies.olmar import OlmarParams, simplex_projection
from quant.strategies.trend import MovingAverageParams, crossover_positions

from tests.conftest import MARKETDATA

from .reference import real_panels, simulate

FREE = Config(capital=1.0, costs=Costs(0.0, 0.0, 0.0))


def run(name, market, **params):
    strategy = strategies.get(name)
    targets = strategy.targets(market, strategy.parse(params))
    return targets, backtest.run(targets, market.close, config=FREE)


def month_end_rows(index):
    """Month-end bar positions, computed the slow way: the last date seen in each (year, month)."""
    last = {}
    for i, d in enumerate(index):
        last[(d.year, d.month)] = i
    return [last[key] for key in sorted(last)]


# --- catalog ----------------------------------------------------------------------------------------

def test_every_strategy_has_a_parameter_schema_with_defaults_and_bounds():
    assert list(strategies.CATALOG) == ["buy_and_hold", "moving_average", "momentum", "dual_momentum",
                                        "breakout", "olmar"]
    schema = strategies.get("momentum").schema()
    assert schema["properties"]["top_n"] == {"default": 20, "description": "How many names to hold",
                                             "maximum": 200, "minimum": 1, "title": "Top N", "type": "integer"}


def test_bad_parameters_name_the_field():
    with pytest.raises(ValidationError) as caught:
        strategies.get("momentum").parse({"top_n": 0})
    assert caught.value.errors()[0]["loc"] == ("top_n",)
    with pytest.raises(ValidationError, match="fast \\(200\\) must be shorter than slow \\(50\\)"):
        strategies.get("moving_average").parse({"fast": 200, "slow": 50})
    with pytest.raises(ValidationError) as caught:
        strategies.get("olmar").parse({"windw": 3})
    assert caught.value.errors()[0]["loc"] == ("windw",)
    with pytest.raises(strategies.UnknownStrategy, match="unknown strategy 'nope' \\(known: buy_and_hold"):
        strategies.get("nope")


# --- buy and hold ------------------------------------------------------------------------------------

def test_buy_and_hold_buys_the_priced_members_once_and_lets_them_drift():
    p = real_panels(["AAPL", "MSFT", "XOM", "TSLA"], "2010-01-01", "2011-12-30")
    targets, result = run("buy_and_hold", Market(close=p["close"]))
    # TSLA lists on 2010-06-29: only the three priced names are bought, 1/3 each, at the second bar's close.
    assert len(targets) == 1 and targets.iloc[0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    close = p["close"][["AAPL", "MSFT", "XOM"]]
    expected = (close / close.iloc[1]).mean(axis=1).iloc[1:]  # sum of (1/3 / p_buy) x p_t
    np.testing.assert_allclose(result.equity.iloc[1:], expected, rtol=1e-12)
    assert len(result.trades) == 3


# --- moving-average trend ----------------------------------------------------------------------------

def slow_sma(values, window):
    return [sum(values[i - window + 1:i + 1]) / window if i >= window - 1 else None for i in range(len(values))]


@pytest.mark.parametrize("mode, fast, slow", [("crossover", 20, 50), ("filter", 2, 100)])
def test_moving_average_on_aapl_matches_a_bar_by_bar_loop(mode, fast, slow):
    p = real_panels(["AAPL"], "2012-01-01", "2014-12-31")
    closes = p["close"]["AAPL"].tolist()
    quick = closes if mode == "filter" else slow_sma(closes, fast)
    long_avg = slow_sma(closes, slow)
    signal = [q is not None and s is not None and q > s for q, s in zip(quick, long_avg)]
    # Held from the close of the bar after the signal: bar t's return is earned if signal[t - 2].
    equity = 1.0
    for t in range(2, len(closes)):
        if signal[t - 2]:
            equity *= closes[t] / closes[t - 1]
    targets, result = run("moving_average", Market(close=p["close"]), mode=mode, fast=fast, slow=slow)
    assert result.equity.iloc[-1] == pytest.approx(equity, rel=1e-10)
    changes = sum(a != b for a, b in zip([False] + signal[:-1], signal))
    assert len(targets) == changes
    # The sweep path holds the same positions.
    held = crossover_positions(np.array(closes), [(fast, slow)], mode=mode)[:, 0]
    np.testing.assert_array_equal(held, result.holdings["AAPL"].to_numpy() > 0)


def test_moving_average_sells_a_name_that_leaves_the_universe_and_slots_are_equal():
    p = real_panels(["AAPL", "MSFT", "XOM", "JNJ"], "2013-01-01", "2014-12-31")
    members = pd.DataFrame(True, index=p["close"].index, columns=p["close"].columns)
    members.loc["2014-01-01":, "XOM"] = False
    targets, result = run("moving_average", Market(close=p["close"], members=members), mode="filter", slow=50)
    entries = targets.stack().loc[lambda w: w > 0]
    dates = entries.index.get_level_values(0)
    assert (entries[dates < "2014-01-01"] == 0.25).all()  # 1 / four members
    assert entries[dates >= "2014-01-01"].to_numpy() == pytest.approx(1 / 3)  # XOM is out: three members
    assert (result.holdings.loc["2014-01-06":, "XOM"] == 0).all()
    np.testing.assert_allclose(result.equity, simulate(targets, p["close"]), rtol=1e-10)


# --- cross-sectional momentum --------------------------------------------------------------------------

MOMENTUM_NAMES = ["AAPL", "MSFT", "XOM", "JNJ", "JPM", "NVDA", "AMZN", "NFLX", "GE", "PG", "KO", "PFE",
                  "CVX", "WMT", "INTC", "CSCO", "ORCL", "BA", "CAT", "MMM"]


def test_momentum_picks_the_top_n_by_12_1_return_every_month_end():
    p = real_panels(MOMENTUM_NAMES, "2008-01-01", "2012-12-31")
    close = p["close"]
    targets, result = run("momentum", Market(close=close), top_n=5, lookback_months=12, skip_months=1)
    rows = month_end_rows(close.index)
    expected = {}
    for k in range(12, len(rows)):
        then, recent = close.iloc[rows[k - 12]], close.iloc[rows[k - 1]]
        score = {n: recent[n] / then[n] - 1 for n in MOMENTUM_NAMES}
        best = sorted(MOMENTUM_NAMES, key=lambda n: (-score[n], MOMENTUM_NAMES.index(n)))[:5]
        expected[close.index[rows[k]]] = set(best)
    assert list(targets.index) == list(expected)
    for day, names in expected.items():
        row = targets.loc[day]
        assert set(row[row > 0].index) == names
        assert row[row > 0].tolist() == pytest.approx([0.2] * 5)
    np.testing.assert_allclose(result.equity, simulate(targets, close), rtol=1e-10)


def test_momentum_inverse_volatility_weights():
    p = real_panels(MOMENTUM_NAMES, "2009-01-01", "2011-12-31")
    close = p["close"]
    targets, _ = run("momentum", Market(close=close), top_n=4, weighting="inverse_vol", vol_window=63)
    day = targets.index[-1]
    row = targets.loc[day]
    held = list(row[row > 0].index)
    at = close.index.get_loc(day)
    returns = close.iloc[at - 63:at + 1].pct_change().iloc[1:]
    inverse = {n: 1 / returns[n].std(ddof=1) for n in held}
    total = sum(inverse.values())
    assert row[held].tolist() == pytest.approx([inverse[n] / total for n in held], rel=1e-10)


def test_momentum_only_ranks_members_of_the_day():
    p = real_panels(MOMENTUM_NAMES, "2008-01-01", "2010-12-31")
    members = pd.DataFrame(True, index=p["close"].index, columns=p["close"].columns)
    members["NFLX"] = False  # NFLX was the top name of 2009-2010 in this slice
    with_all, _ = run("momentum", Market(close=p["close"]), top_n=3)
    without, _ = run("momentum", Market(close=p["close"], members=members), top_n=3)
    assert (with_all["NFLX"] > 0).any()
    assert (without["NFLX"] == 0).all()


# --- dual momentum -----------------------------------------------------------------------------------

def test_dual_momentum_goes_defensive_when_the_best_return_is_negative():
    p = real_panels(["AAPL", "XOM", "JPM", "JNJ"], "2007-01-01", "2010-12-31")
    close = p["close"]
    targets, result = run("dual_momentum", Market(close=close), lookback_months=12, top_n=1, defensive="JNJ")
    rows = month_end_rows(close.index)
    for k in range(12, len(rows)):
        now, then = close.iloc[rows[k]], close.iloc[rows[k - 12]]
        score = {n: now[n] / then[n] - 1 for n in ("AAPL", "XOM", "JPM")}
        best = max(score, key=lambda n: (score[n], -["AAPL", "XOM", "JPM"].index(n)))
        pick = best if score[best] > 0 else "JNJ"
        row = targets.loc[close.index[rows[k]]]
        assert row[row > 0].to_dict() == {pick: 1.0}, close.index[rows[k]]
    # In the 2008 crash every risky name was down over 12 months: the book sat in JNJ.
    assert targets.loc["2008-10-31", "JNJ"] == 1.0
    np.testing.assert_allclose(result.equity, simulate(targets, close), rtol=1e-10)


def test_dual_momentum_without_a_defensive_asset_holds_cash():
    p = real_panels(["AAPL", "XOM", "JPM"], "2007-01-01", "2009-06-30")
    targets, result = run("dual_momentum", Market(close=p["close"]), top_n=2)
    assert (targets.loc["2008-10-31"] == 0).all()
    with pytest.raises(KeyError, match="'IEF' has no prices"):
        run("dual_momentum", Market(close=p["close"]), defensive="IEF")


# --- momentum breakout ----------------------------------------------------------------------------------

BREAKOUT_NAMES = ["NVDA", "NFLX", "AMZN", "AAPL", "TSLA", "AAL", "UAL", "HCA", "FB", "AVGO", "REGN", "GILD",
                  "BIIB", "LUV", "DAL", "MSFT", "JNJ", "XOM", "JPM", "GOOGL"]
INTERVALS = MARKETDATA / "us" / "sp500_membership_intervals.csv"


def members_by_hand(tickers, dates):
    """The real S&P 500 membership of the tickers on each date, read with the csv module (start inclusive,
    end exclusive). In 2012-2016: AAL joined 2015-03-23, UAL 2015-09-03, HCA 2015-01-27, FB 2013-12-23,
    AVGO 2014-05-08; TSLA only in 2020, so never here."""
    spans = {name: [] for name in tickers}
    with open(INTERVALS, newline="") as f:
        for row in csv.DictReader(f):
            if row["ticker"] in spans:
                spans[row["ticker"]].append((pd.Timestamp(row["start_date"]),
                                             pd.Timestamp(row["end_date"]) if row["end_date"] else None))
    return pd.DataFrame({name: [any(s <= d and (e is None or d < e) for s, e in spans[name]) for d in dates]
                         for name in tickers}, index=dates)


def mean_of_last(values, n):
    """Mean of the last n values of a list, or None when there are fewer."""
    return sum(values[-n:]) / n if len(values) >= n else None


def setups_by_hand(p, members, q):
    """The scanner's momentum breakout (no filters) on every bar, with plain Python over lists.

    Per name: close > MA_fast > MA_mid > MA_slow, each above itself `rising_over` rows back (averages of the
    last w valid closes); close >= (1 - max_below_high) x the highest high of the last high_window rows;
    mean true range % of the last atr_short valid ranges / of the last atr_long <= max_atr_ratio; at least
    history_sessions valid closes. Across the day's members with a close and a return: the return over a
    window is in when fewer than top_percent % of them are strictly better; score = mean percentile.
    """
    dates, names = p["close"].index, list(p["close"].columns)
    windows = [int(w) for w in q.return_windows.split(",")]
    ma = (q.ma_fast, q.ma_mid, q.ma_slow)
    need = max(max(windows) + 1, q.ma_slow + q.rising_over, q.high_window, q.atr_long + 1)
    own, returns = {}, {}
    for name in names:
        c, h, lo = (p[f][name].tolist() for f in ("close", "high", "low"))
        valid, ranges, history, last_close = [], [], [], []
        averages = {w: [] for w in ma}
        rules, rets = [], []
        previous = None
        for t in range(len(dates)):
            if c[t] == c[t]:
                if previous is not None:
                    top = max(h[t] if h[t] == h[t] else c[t], previous)
                    bottom = min(lo[t] if lo[t] == lo[t] else c[t], previous)
                    ranges.append((top - bottom) / previous)
                valid.append(c[t])
                previous = c[t]
            last_close.append(previous)
            for w in ma:  # a row without a close carries its averages
                averages[w].append(mean_of_last(valid, w) if c[t] == c[t] else (averages[w][-1] if t else None))
            if c[t] != c[t]:
                rules.append(False)
                rets.append({w: None for w in windows})
                continue
            a = [averages[w][t] for w in ma]
            then = [averages[w][t - q.rising_over] if t >= q.rising_over else None for w in ma]
            trend = (None not in a and None not in then and c[t] > a[0] > a[1] > a[2]
                     and all(x > y for x, y in zip(a, then)))
            highs = [x if x == x else y for x, y in zip(h[max(0, t - q.high_window + 1):t + 1],
                                                         c[max(0, t - q.high_window + 1):t + 1])]
            near = c[t] >= (1 - q.max_below_high) * max(x for x in highs if x == x) - 1e-9
            short, long_ = mean_of_last(ranges, q.atr_short), mean_of_last(ranges, q.atr_long)
            tight = short is not None and long_ is not None and long_ > 0 and short / long_ <= q.max_atr_ratio + 1e-9
            rules.append(trend and near and tight and len(valid) >= need)
            rets.append({w: c[t] / last_close[t - w] - 1 if t >= w and last_close[t - w] else None for w in windows})
        own[name], returns[name] = rules, rets
    setup = pd.DataFrame(False, index=dates, columns=names)
    score = pd.DataFrame(np.nan, index=dates, columns=names)
    for t, day in enumerate(dates):
        ranked = [n for n in names if members.at[day, n] and p["close"].at[day, n] == p["close"].at[day, n]]
        tops = {n: [] for n in ranked}
        percentiles = {n: [] for n in ranked}
        for w in windows:
            values = {n: returns[n][t][w] for n in ranked if returns[n][t][w] is not None}
            for n, v in values.items():
                better = sum(1 for x in values.values() if x > v)
                tops[n].append(better < q.top_percent / 100 * len(values) - 1e-9)
                percentiles[n].append(100 * sum(1 for x in values.values() if x <= v) / len(values))
        for n in ranked:
            momentum = any(tops[n]) if q.require == "any" else len(tops[n]) == len(windows) and all(tops[n])
            setup.at[day, n] = own[n][t] and momentum
            if percentiles[n]:
                score.at[day, n] = sum(percentiles[n]) / len(percentiles[n])
    return setup, score


def entries_by_hand(p, members, setup, score, q):
    """Bars t with a setup on t - 1, a member on t, close_t above the highest high of the base_days bars
    before t, volume_t >= volume_mult x the mean of the 50 volumes before t (all present)."""
    c, h, v = (p[f] for f in ("close", "high", "volume"))
    found = []
    for j, name in enumerate(c.columns):
        for t in range(max(q.base_days, 50) + 1, len(c)):
            base = h[name].iloc[t - q.base_days:t].tolist()
            before = v[name].iloc[t - 50:t].tolist()
            if any(x != x for x in base + before) or not (setup.iat[t - 1, j] and members.iat[t, j]):
                continue
            if c[name].iat[t] > max(base) and v[name].iat[t] >= q.volume_mult * sum(before) / 50:
                found.append((t, name))
    return found


BREAKOUT_Q = dict(top_percent=15, max_positions=3)


@pytest.fixture(scope="module")
def breakout_slice():
    p = real_panels(BREAKOUT_NAMES, "2012-01-01", "2016-12-31")
    members = members_by_hand(BREAKOUT_NAMES, p["close"].index)
    q = BreakoutParams(**BREAKOUT_Q)
    setup, score = setups_by_hand(p, members, q)
    return p, members, q, setup, score


def test_breakout_setups_are_the_scanners_rules_checked_bar_by_bar(breakout_slice):
    p, members, q, expected, expected_score = breakout_slice
    market = Market(close=p["close"], high=p["high"], low=p["low"], volume=p["volume"], members=members)
    setup, score = breakout_setups(market, q)
    mismatch = (setup != expected).stack()
    assert not mismatch.any(), mismatch[mismatch].index[:10].tolist()
    np.testing.assert_allclose(score.where(members).to_numpy(), expected_score.to_numpy(), rtol=1e-12)
    # A real answer: setups in most of the names, none outside the index (TSLA, AAL before 2015-03-23).
    assert expected.to_numpy().sum() >= 200 and (expected.sum() > 0).sum() >= 10
    assert not expected["TSLA"].any() and not expected.loc[:"2015-03-20", "AAL"].any()
    # The same rules as a scan: the screen's hits with no filters, on the same panel.
    panel = screens.UniversePanel.build(close=p["close"], high=p["high"], low=p["low"], volume=p["volume"],
                                        members=members)
    hits = screens.momentum_breakout(panel, q.screen_params()).hit_mask()
    assert (hits == expected).all().all()


def test_breakout_positions_enter_the_bar_after_a_setup_and_leave_on_the_stop_or_trail(breakout_slice):
    p, members, q, setup, score = breakout_slice
    market = Market(close=p["close"], high=p["high"], low=p["low"], volume=p["volume"], members=members)
    targets, result = run("breakout", market, **BREAKOUT_Q)
    close, names = p["close"], BREAKOUT_NAMES
    c = {n: close[n].tolist() for n in names}
    h, lo = ({n: p[f][n].tolist() for n in names} for f in ("high", "low"))

    def atr(n, t, days=14):
        ranges = [max(h[n][s] - lo[n][s], abs(h[n][s] - c[n][s - 1]), abs(lo[n][s] - c[n][s - 1]))
                  for s in range(t - days + 1, t + 1)]
        return sum(ranges) / days if t >= days and all(x == x for x in ranges) else math.nan

    def below_trail(n, s, days=20):
        window = c[n][s - days + 1:s + 1]
        return s >= days - 1 and all(x == x for x in window) and c[n][s] < sum(window) / days

    by_bar = {}
    for t, n in entries_by_hand(p, members, setup, score, q):
        by_bar.setdefault(t, []).append(n)
    # The state machine, bar by bar: who is held, when each exit is decided.
    exit_of, held, expected, crowded, stopped = {}, set(), [], 0, 0
    for t in range(len(close)):
        for name in sorted(held):
            if exit_of[name] == t:
                held.discard(name)
        candidates = [n for n in by_bar.get(t, []) if n not in held and (n not in exit_of or exit_of[n] < t)
                      and atr(n, t) == atr(n, t)]
        candidates.sort(key=lambda n: (-score.at[close.index[t - 1], n], names.index(n)))
        crowded += len(candidates) > 3 - len(held)
        for name in candidates[:3 - len(held)]:
            stop = c[name][t] - 2.0 * atr(name, t)
            x = next((s for s in range(t + 1, len(close)) if c[name][s] < stop or below_trail(name, s)), len(close))
            stopped += x < len(close) and c[name][x] < stop
            exit_of[name] = x
            held.add(name)
            expected.append((close.index[t], name, 1 / 3))
            if x < len(close):
                expected.append((close.index[x], name, 0.0))
    got = [(d, n, w) for (d, n), w in targets.stack().dropna().items()]
    assert sorted(got) == sorted(expected)
    assert len(expected) >= 10 and stopped >= 1 and crowded >= 1  # entries, a stop exit, more breakouts than slots
    np.testing.assert_allclose(result.equity, simulate(targets, close), rtol=1e-10)


HAND = dict(return_windows="5", top_percent=50, ma_fast=2, ma_mid=3, ma_slow=4, rising_over=1, high_window=10,
            max_below_high=0.15, atr_short=2, atr_long=4, max_atr_ratio=0.9, base_days=3, volume_mult=1.5,
            atr_days=2, atr_mult=2.0, trail_ma=10, max_positions=1)


def test_breakout_by_hand_enters_on_the_volume_breakout_after_a_setup_and_leaves_on_the_stop():
    # A rises 1 a bar from 100 (row 0) to 149 (row 49), coils by 0.25 a bar to 150 (row 53), drops to 149 (row 54)
    # and stays there. High = low = close, so a true range is the close-to-close move. B is flat at 50.
    a = [100.0 + t for t in range(50)] + [149.25, 149.5, 149.75, 150.0] + [149.0] * 4
    n = len(a)
    volume_a = [1000.0] * n
    volume_a[50] = volume_a[52] = 2000.0
    volume_b = [1000.0] * n
    volume_b[52] = 5000.0
    days = pd.bdate_range("2024-01-01", periods=n)
    close = pd.DataFrame({"A": a, "B": [50.0] * n}, index=days)
    volume = pd.DataFrame({"A": volume_a, "B": volume_b}, index=days)
    market = Market(close=close, high=close, low=close, volume=volume)
    setup, _ = breakout_setups(market, BreakoutParams(**HAND))
    # Tightening first holds on row 50: true range % (move / previous close) over 2 bars = (1/148 + 0.25/149) / 2
    # = 0.004217, over 4 bars = (1/146 + 1/147 + 1/148 + 0.25/149) / 4 = 0.005522, ratio 0.764 <= 0.9. On row 49
    # every move is 1, ratio (1/148 + 1/147) / 2 / mean(1/145..1/148) = 0.995. Trend on row 50: 149.25 > MA2
    # 149.125 > MA3 148.75 > MA4 148.3125, each above the row before; close = the 10-bar high; A's 5-bar return
    # beats B's 0 (top 50% of two: nobody better). Rows 51 and 52 likewise (ratios 0.40 and 0.57). On row 53 the
    # last four moves are all 0.25: ratio (0.25/149.5 + 0.25/149.75) / 2 / mean(0.25/149..0.25/149.75) = 0.998.
    assert list(np.flatnonzero(setup["A"])) == [50, 51, 52] and not setup["B"].any()
    targets, result = run("breakout", market, **HAND)
    # Row 50's volume 2000 >= 1.5 x 1000 and 149.25 > max(147, 148, 149), but row 49 was not set up: no entry.
    # Row 52: set up on 51, 149.75 > max(149, 149.25, 149.5) and 2000 >= 1.5 x (49 x 1000 + 2000) / 50 = 1530:
    # enter, stop = 149.75 - 2 x ATR2 = 149.75 - 2 x (0.25 + 0.25) / 2 = 149.25. Row 53 closes 150 (held), row
    # 54 closes 149 < 149.25: the stop (the 10-bar average there is 1482.5 / 10 = 148.25, not the trail).
    assert [(days.get_loc(d), w) for d, w in targets["A"].dropna().items()] == [(52, 1.0), (54, 0.0)]
    assert targets["B"].isna().all()
    # Bought at row 53's close 150, sold at row 55's close 149.
    assert result.equity.iloc[-1] == pytest.approx(149 / 150, rel=1e-12)
    # A name that leaves the universe on the breakout bar is not bought, though it was set up the day before.
    members = pd.DataFrame(True, index=days, columns=["A", "B"])
    members.iloc[52:, 0] = False
    targets, _ = run("breakout", Market(close=close, high=close, low=close, volume=volume, members=members), **HAND)
    assert targets.empty


def test_breakout_params_map_from_the_scanners_screen_and_back():
    screen = screens.MomentumBreakout(return_windows=(42, 84), top_percent=3, require="all", ma_windows=(8, 21, 60),
                                      rising_over=3, high_window=100, max_below_high=0.2, atr_short=5, atr_long=40,
                                      max_atr_ratio=0.8)
    # Every rule parameter of the screen differs from its default here, so a new one fails this test until mapped.
    defaults = screens.MomentumBreakout()
    assert [f for f in screens.MomentumBreakout.model_fields if f != "filters"
            and getattr(screen, f) == getattr(defaults, f)] == []
    params = params_from_screen(screen, max_positions=5)
    assert params.return_windows == "42,84" and (params.ma_fast, params.ma_mid, params.ma_slow) == (8, 21, 60)
    assert params.max_positions == 5 and params.base_days == 20
    assert params.screen_params() == screen.model_copy(update={"filters": screens.Filters()})
    # The strategy's defaults are the screen's.
    assert BreakoutParams().screen_params() == defaults.model_copy(update={"filters": screens.Filters()})
    assert params_from_screen(defaults) == BreakoutParams()
    # Flat values, as the form and the API send them.
    parsed = strategies.get("breakout").parse({"return_windows": "42, 84", "ma_fast": "8", "ma_mid": "21"})
    assert parsed.return_windows == "42,84" and parsed.ma_mid == 21
    for values, message in [({"ma_fast": 30}, "ma_fast < ma_mid < ma_slow, got 30, 20, 50"),
                            ({"atr_short": 50}, "atr_short \\(50\\) must be shorter than atr_long \\(50\\)"),
                            ({"return_windows": "21,x"}, "whole numbers of sessions separated by commas")]:
        with pytest.raises(ValidationError, match=message):
            strategies.get("breakout").parse(values)


# --- OLMAR --------------------------------------------------------------------------------------------

def bisection_projection(v):
    """Simplex projection by bisection on the threshold (a different algorithm from the sort-based one)."""
    lo, hi = min(v) - 1, max(v)
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(max(x - mid, 0) for x in v) > 1:
            lo = mid
        else:
            hi = mid
    return [max(x - hi, 0) for x in v]


def test_simplex_projection_agrees_with_bisection():
    for v in ([0.2, 0.5, 0.9], [3.0, -1.0, 0.5, 0.5], [0.25, 0.25, 0.25, 0.25]):
        np.testing.assert_allclose(simplex_projection(np.array(v)), bisection_projection(v), atol=1e-12)


def test_olmar_weights_follow_the_paper_and_earn_the_next_periods_relatives():
    p = real_panels(["AAPL", "MSFT", "XOM", "JNJ"], "2015-01-01", "2015-04-30")
    close = p["close"]
    w, eps = 5, 10.0
    prices = close.to_numpy().tolist()
    b, decisions = None, {}
    for t in range(w - 1, len(prices)):
        predicted = [sum(prices[s][i] for s in range(t - w + 1, t + 1)) / w / prices[t][i] for i in range(4)]
        b = b or [0.25] * 4
        mean = sum(predicted) / 4
        norm = sum((x - mean) ** 2 for x in predicted)
        lam = max(0.0, (eps - sum(bi * xi for bi, xi in zip(b, predicted))) / norm)
        b = bisection_projection([bi + lam * (xi - mean) for bi, xi in zip(b, predicted)])
        decisions[t] = b
    targets, _ = run("olmar", Market(close=close), window=w, epsilon=eps)
    assert targets.index[0] == close.index[w - 1]
    for t, expected in decisions.items():
        np.testing.assert_allclose(targets.loc[close.index[t]].to_numpy(), expected, atol=1e-9)
    # The paper's wealth: b_{t+1} (decided on t) times x_{t+1} = p_{t+1} / p_t, never x_t.
    wealth = 1.0
    for t in range(w - 1, len(prices) - 1):
        wealth *= sum(bi * prices[t + 1][i] / prices[t][i] for i, bi in enumerate(decisions[t]))
    # The engine filling at the next open, here the previous close (no gap), earns exactly that.
    opens = close.shift(1)
    result = backtest.run(targets, close, open_=opens, config=Config(capital=1.0, costs=Costs(0, 0, 0), fill="open"))
    assert result.equity.iloc[-1] == pytest.approx(wealth, rel=1e-10)
    # Same-bar execution (b_{t+1} against x_t) would give another number: the bug is detectable.
    same_bar = 1.0
    for t in range(w, len(prices)):
        same_bar *= sum(bi * prices[t][i] / prices[t - 1][i] for i, bi in enumerate(decisions[t]))
    assert not math.isclose(same_bar, wealth, rel_tol=1e-4)


def test_olmar_rejects_bad_parameters():
    with pytest.raises(ValidationError):
        OlmarParams(window=1)
    with pytest.raises(ValidationError):
        MovingAverageParams(mode="sideways")


def test_window_mean_matches_pandas_rolling_and_skips_nothing_silently():
    from quant.strategies.common import window_mean

    values = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 4.0], [4.0, 5.0], [5.0, 6.0]])
    out = window_mean(values, 2)
    # Column 0: (1+2)/2, (2+3)/2, ...; column 1: a window touching the missing value is NaN.
    np.testing.assert_allclose(out[:, 0], [np.nan, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(out[:, 1], [np.nan, np.nan, np.nan, 4.5, 5.5])
    expected = pd.DataFrame(values).rolling(2, min_periods=2).mean().to_numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12)
