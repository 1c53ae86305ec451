"""Each strategy on a small real slice of ../shared/marketdata, checked by an independent calculation here."""
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from quant import backtest, strategies
from quant.backtest import Config, Costs
from quant.strategies import Market
from quant.strategies.breakout import BreakoutParams, breakout_setups
from quant.strategies.olmar import OlmarParams, simplex_projection
from quant.strategies.trend import MovingAverageParams, crossover_positions

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

BREAKOUT_NAMES = ["NVDA", "NFLX", "AMZN", "AAPL", "TSLA"]


def scalar_setup(c, h, lo, v, t, q):
    """The breakout rules at bar t of one name, with plain Python over lists."""
    b = q.base_days
    if t < max(b + q.momentum_days, 50, q.trend_ma - 1, b):
        return False
    window_high = max(h[t - b:t])
    window_low = min(lo[t - b:t])
    prior = c[t - b] / c[t - b - q.momentum_days] - 1
    volume_ok = v[t] >= q.volume_mult * sum(v[t - 50:t]) / 50
    trend = c[t] > sum(c[t - q.trend_ma + 1:t + 1]) / q.trend_ma
    return prior >= q.min_gain and window_high / window_low - 1 <= q.max_base_range and c[t] > window_high \
        and volume_ok and trend


def test_breakout_rules_match_a_bar_by_bar_check():
    p = real_panels(BREAKOUT_NAMES, "2012-01-01", "2016-12-31")
    q = BreakoutParams(min_gain=0.25, max_base_range=0.20, volume_mult=1.2)
    setups = breakout_setups(p["close"], p["high"], p["low"], p["volume"], q)
    found = 0
    for name in BREAKOUT_NAMES:
        c, h, lo, v = (p[f][name].tolist() for f in ("close", "high", "low", "volume"))
        first = next(i for i, x in enumerate(c) if x == x)
        for t in range(len(c)):
            window = [c, h, lo, v]
            complete = all(x == x for series in window for x in series[max(0, t - 150):t + 1])
            if t - first < 150 or not complete:
                continue
            expected = scalar_setup(c, h, lo, v, t, q)
            assert bool(setups[name].iloc[t]) == expected, (name, p["close"].index[t])
            found += expected
    assert found >= 5  # the slice has real breakouts (NVDA, NFLX, AMZN, TSLA 2013-2016)


def test_breakout_positions_enter_after_a_breakout_and_leave_on_the_stop_or_trail():
    p = real_panels(BREAKOUT_NAMES, "2012-01-01", "2016-12-31")
    market = Market(close=p["close"], high=p["high"], low=p["low"], volume=p["volume"])
    params = dict(min_gain=0.25, max_base_range=0.20, volume_mult=1.2, max_positions=2, atr_mult=2.0, trail_ma=20)
    targets, result = run("breakout", market, **params)
    q = BreakoutParams(**params)
    setups = breakout_setups(p["close"], p["high"], p["low"], p["volume"], q)
    close = p["close"]
    trail = close.rolling(20).mean()
    true_range = pd.concat([p["high"] - p["low"], (p["high"] - close.shift()).abs(), (p["low"] - close.shift()).abs()]
                           ).groupby(level=0).max()
    atr = true_range.rolling(14).mean()
    strength = close.shift(20) / close.shift(83) - 1
    # The state machine, bar by bar: who is held, when each exit is decided.
    exit_of, held, expected = {}, set(), []
    for t, day in enumerate(close.index):
        for name in sorted(held):
            if exit_of[name] == t:
                held.discard(name)
        candidates = [n for n in BREAKOUT_NAMES if setups.at[day, n] and n not in held
                      and (n not in exit_of or exit_of[n] < t)]
        candidates.sort(key=lambda n: (-strength.at[day, n], BREAKOUT_NAMES.index(n)))
        for name in candidates[:2 - len(held)]:
            stop = close.at[day, name] - 2.0 * atr.at[day, name]
            x = next((s for s in range(t + 1, len(close)) if close.iat[s, BREAKOUT_NAMES.index(name)] < stop
                      or close.iat[s, BREAKOUT_NAMES.index(name)] < trail.iat[s, BREAKOUT_NAMES.index(name)]),
                     len(close))
            exit_of[name] = x
            held.add(name)
            expected.append((day, name, 0.5))
            if x < len(close):
                expected.append((close.index[x], name, 0.0))
    got = [(d, n, w) for (d, n), w in targets.stack().dropna().items()]
    assert sorted(got) == sorted(expected)
    assert len(expected) >= 4
    np.testing.assert_allclose(result.equity, simulate(targets, close), rtol=1e-10)


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
