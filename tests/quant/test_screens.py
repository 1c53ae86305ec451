"""Screens on small hand-made panels: each rule, the funnel, no look-ahead, BR-07, BR-13, the replay.

Every expected value is worked out by hand in the comment next to it.
"""
import math

import numpy as np
import pandas as pd
import pydantic
import pytest

from quant import screens
from quant.screens import Filters, MomentumBreakout, UniversePanel

NOTHING = Filters()


def days(n, start="2024-01-01"):
    return pd.bdate_range(start, periods=n)


def frame(columns, index=None):
    columns = {name: [np.nan if v is None else v for v in values] for name, values in columns.items()}
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=index if index is not None else days(n), dtype="float64")


def close_to(actual, expected):
    return math.isclose(actual, expected, rel_tol=0, abs_tol=1e-9)


# --- returns, BR-07 ---------------------------------------------------------------------------------------

def test_br07_a_zero_close_is_missing_and_never_a_minus_100_percent_return():
    panel = UniversePanel.build(close=frame({"Z": [10.00, 10.20, 0.00, 10.10, 10.30]}))
    one = screens.period_return(panel.close, 1)["Z"].tolist()
    # NaN, 10.20/10.00-1 = +2%, NaN (the zero is missing), 10.10/10.20-1 = -0.980%, 10.30/10.10-1 = +1.980%
    assert math.isnan(one[0]) and math.isnan(one[2])
    assert close_to(one[1], 0.02) and close_to(one[3], 10.10 / 10.20 - 1) and close_to(one[4], 10.30 / 10.10 - 1)
    two = screens.period_return(panel.close, 2)["Z"].tolist()
    # Row 4 looks back to row 2 (the zero): the last valid close on or before it is 10.20 -> 10.30/10.20-1.
    assert close_to(two[4], 10.30 / 10.20 - 1)
    assert all(v > -1 and np.isfinite(v) for v in one + two if not math.isnan(v))


def test_a_negative_or_zero_high_low_or_volume_is_missing_too():
    panel = UniversePanel.build(close=frame({"A": [10.0, 11.0]}), high=frame({"A": [0.0, 12.0]}),
                                low=frame({"A": [-1.0, 10.0]}), volume=frame({"A": [-5.0, 100.0]}))
    assert math.isnan(panel.high["A"].iloc[0]) and math.isnan(panel.low["A"].iloc[0])
    assert math.isnan(panel.volume["A"].iloc[0]) and panel.volume["A"].iloc[1] == 100.0


# --- top percentile ---------------------------------------------------------------------------------------

def test_top_percentile_keeps_the_best_names_of_the_eligible_ones():
    values = frame({f"N{i}": [float(i)] for i in range(1, 11)})  # returns 1 .. 10
    eligible = values.notna()
    passed, percentile = screens.top_percentile(values, eligible, 20)
    # Top 20% of 10 names = fewer than 2 names strictly better: N10 (0 better) and N9 (1 better).
    assert [c for c in values.columns if passed[c].iloc[0]] == ["N9", "N10"]
    # N8: 8 of the 10 values are <= 8 -> 80.
    assert percentile["N8"].iloc[0] == 80.0


def test_ties_share_the_better_place_and_non_members_take_no_place():
    values = frame({"A": [5.0], "B": [5.0], "C": [4.0], "D": [3.0], "OUT": [99.0]})
    eligible = values.notna()
    eligible["OUT"] = False
    passed, percentile = screens.top_percentile(values, eligible, 25)
    # Top 25% of 4 members = fewer than 1 name better: A and B (tied at 5) have none better; OUT is no member.
    assert passed.iloc[0].to_dict() == {"A": True, "B": True, "C": False, "D": False, "OUT": False}
    assert percentile["A"].iloc[0] == 100.0 and math.isnan(percentile["OUT"].iloc[0])


def test_a_percent_that_is_not_exact_in_binary_still_counts_exactly():
    # 7% of 100 is 7.000000000000001 in floating point: still exactly 7 names, not 8.
    values = frame({f"N{i:03d}": [float(i)] for i in range(100)})
    passed, _ = screens.top_percentile(values, values.notna(), 7)
    assert int(passed.iloc[0].sum()) == 7


# --- the breakout rules ---------------------------------------------------------------------------------

SMALL = MomentumBreakout(filters=NOTHING, return_windows=(2,), ma_windows=(2, 3, 4), rising_over=1,
                         high_window=3, max_below_high=0.10, atr_short=2, atr_long=4, max_atr_ratio=0.6)


def test_trend_needs_close_above_rising_ordered_averages():
    close = frame({"UP": [1, 2, 3, 4, 5], "DOWN": [5, 4, 3, 2, 1], "DIP": [1, 2, 3, 4, 3.9]})
    rules, metrics = screens.breakout_setup(close, close, close, SMALL)
    # UP at row 4: MA2 = (4+5)/2 = 4.5, MA3 = (3+4+5)/3 = 4, MA4 = (2+3+4+5)/4 = 3.5; 5 > 4.5 > 4 > 3.5, and each
    # is above its value a session earlier (3.5, 3, 2.5). At row 3 MA4 a session earlier does not exist yet.
    assert rules["trend"]["UP"].tolist() == [False, False, False, False, True]
    assert metrics["ma_3"]["UP"].iloc[4] == 4.0
    # DOWN: the averages fall. DIP: 3.9 is below MA2 = (4+3.9)/2 = 3.95.
    assert not rules["trend"]["DOWN"].any() and not rules["trend"]["DIP"].any()


def test_near_high_compares_the_close_with_the_highest_high_of_the_window():
    close = frame({"FAR": [9.5, 11.5, 10.9, 10.7], "NEAR": [9.5, 11.5, 10.9, 10.9]})
    high = frame({"FAR": [10, 12, 11, 10.5], "NEAR": [10, 12, 11, 10.9]})
    rules, metrics = screens.breakout_setup(close, high, close, SMALL)
    # 3-session high at row 3 = max(12, 11, 10.5) = 12. FAR: 1 - 10.7/12 = 10.83% below > 10%; NEAR: 1 - 10.9/12 = 9.17%.
    assert metrics["high_3"]["FAR"].iloc[3] == 12
    assert close_to(metrics["below_high"]["FAR"].iloc[3], 1 - 10.7 / 12)
    assert (rules["near_high"]["FAR"].iloc[3], rules["near_high"]["NEAR"].iloc[3]) == (False, True)
    # With a 2-session window the 12 has left: max(11, 10.5) = 11, 1 - 10.7/11 = 2.7% -> near.
    rules, _ = screens.breakout_setup(close, high, close, SMALL.model_copy(update={"high_window": 2}))
    assert rules["near_high"]["FAR"].iloc[3]


def test_true_range_uses_the_previous_close_across_a_gap():
    panel = UniversePanel.build(close=frame({"G": [100, 105]}), high=frame({"G": [100, 106]}),
                                low=frame({"G": [100, 103]}))
    # Gap up: max(106, 100) - min(103, 100) = 6 over the previous close 100 -> 6%.
    assert close_to(screens.true_range_pct(panel)["G"].iloc[1], 0.06)


def test_tightening_compares_the_recent_average_true_range_with_the_longer_one():
    close = frame({"T": [100, 100, 100, 100, 100]})
    high = frame({"T": [100, 104, 104, 102, 101]})
    low = frame({"T": [100, 96, 96, 98, 99]})
    rules, metrics = screens.breakout_setup(close, high, low, SMALL)
    # True ranges over the previous close 100: -, 8%, 8%, 4%, 2%. ATR2 = (4+2)/2 = 3%, ATR4 = (8+8+4+2)/4 = 5.5%,
    # ratio 3/5.5 = 0.5455 <= 0.6. At row 3 only three ranges exist, so there is no ATR4 yet.
    assert close_to(metrics["atr_ratio"]["T"].iloc[4], 0.03 / 0.055)
    assert rules["tightening"]["T"].tolist() == [False, False, False, False, True]


# --- filters ------------------------------------------------------------------------------------------------

def test_dollar_volume_counts_a_session_without_a_bar_as_nothing_traded():
    panel = UniversePanel.build(close=frame({"A": [10, None, 10]}), volume=frame({"A": [100, None, 300]}))
    # (10 x 100 + 0 + 10 x 300) / 3 = 1,333.33; nothing before three sessions exist.
    assert close_to(screens.dollar_volume(panel, 3)["A"].iloc[2], 4000 / 3)
    assert math.isnan(screens.dollar_volume(panel, 3)["A"].iloc[1])


def test_per_currency_minimums_filter_each_name_by_its_own_currency():
    close = frame({"US": [4.0], "AU": [4.0], "HK": [0.5]})
    info = pd.DataFrame({"currency": ["USD", "AUD", "HKD"], "exchange": ["XNYS", "XASX", "XHKG"]},
                        index=["US", "AU", "HK"])
    panel = UniversePanel.build(close=close, info=info)
    params = screens.FiftyTwoWeekHigh(filters=Filters(min_price={"usd": 5, "AUD": 1}), window=1)
    [price] = [r for r in screens.fifty_two_week_high(panel, params).rules if r.name == "price"]
    # 4 < USD 5 fails; 4 >= AUD 1 passes; HKD has no minimum, so it is not filtered.
    assert price.passed.iloc[0].to_dict() == {"US": False, "AU": True, "HK": True}


def test_sector_and_exchange_filters_match_any_case():
    close = frame({"A": [10.0], "B": [10.0], "C": [10.0]})
    info = pd.DataFrame({"exchange": ["XNYS", "XASX", "XNAS"], "sector": ["Energy", "energy", "Materials"]},
                        index=["A", "B", "C"])
    panel = UniversePanel.build(close=close, info=info)
    params = screens.FiftyTwoWeekHigh(filters=Filters(sectors=["ENERGY"], exchanges=["xnys", "XNAS"]), window=1)
    result = screens.fifty_two_week_high(panel, params)
    rules = {r.name: r.passed.iloc[0].to_dict() for r in result.rules}
    assert rules["exchange"] == {"A": True, "B": False, "C": True}
    assert rules["sector"] == {"A": True, "B": True, "C": False}


def test_a_sector_that_matches_no_name_of_the_panel_is_named_with_the_known_ones():
    close = frame({"A": [10.0], "B": [10.0]})
    info = pd.DataFrame({"sector": ["Energy", "Health  Care"]}, index=["A", "B"])
    params = screens.FiftyTwoWeekHigh(filters=Filters(sectors=["health care", "Informaton Technology"]), window=1)
    result = screens.fifty_two_week_high(UniversePanel.build(close=close, info=info), params)
    [sector] = [f for f in result.funnel(close.index[0]) if f["rule"] == "sector"]
    # 'health care' is B's 'Health  Care' (case and runs of spaces aside); the misspelt one matches nobody.
    assert sector["passed"] == 1
    assert sector["unmatched"] == ["Informaton Technology"] and sector["known"] == ["Energy", "Health  Care"]


def test_the_price_rules_name_only_the_currencies_of_the_names_screened():
    close = frame({"A": [10.0] * 3})
    liquid = screens.FiftyTwoWeekHigh(window=1)  # USD 5 / AUD 1, USD 20M / AUD 5M
    us = UniversePanel.build(close=close, info=pd.DataFrame({"currency": ["USD"]}, index=["A"]))
    labels = {r.name: r.label for r in screens.fifty_two_week_high(us, liquid).rules}
    assert labels["price"] == "Close as traded at least USD 5"
    assert labels["dollar_volume"] == "Average traded value over 20 sessions at least USD 20M"
    assert screens.filter_labels(liquid.filters, {"AUD", "USD"})["price"] == "Close as traded at least AUD 1, USD 5"
    assert screens.filter_labels(liquid.filters, {"AUD", "EUR"})["price"] == (
        "Close as traded at least AUD 1; EUR not filtered")


# --- parameters over the defaults -------------------------------------------------------------------------

def test_overrides_merge_into_the_defaults_key_by_key():
    # A sector filter keeps the default price and traded-value minimums (it used to replace the filters).
    params = screens.screen_params("momentum_breakout", {"filters": {"sectors": ["Information Technology"]}})
    assert params.filters.min_price == {"USD": 5.0, "AUD": 1.0}
    assert params.filters.min_dollar_volume == {"USD": 20e6, "AUD": 5e6}
    assert params.filters.sectors == ["Information Technology"]
    # The form's placeholder: the USD minimum changes, the AUD one and the traded value stay.
    params = screens.screen_params("momentum_breakout", {"top_percent": 2, "filters": {"min_price": {"USD": 10}}})
    assert (params.top_percent, params.filters.min_price) == (2.0, {"USD": 10.0, "AUD": 1.0})
    assert params.filters.min_dollar_volume == {"USD": 20e6, "AUD": 5e6}
    # {} empties, null removes (the default applies), lists replace; layers apply in turn.
    assert screens.screen_params("high_52w", {"filters": {}}).filters == Filters()
    assert screens.screen_params("high_52w", {"filters": {"min_price": {}}}).filters.min_price == {}
    assert screens.screen_params("high_52w", {"filters": {"min_price": {"AUD": None}}}).filters.min_price == {"USD": 5.0}
    assert screens.screen_params("high_52w", {"window": 10}, {"window": None}).window == 252
    assert screens.screen_params("momentum_breakout", {"return_windows": [63]}).return_windows == (63,)
    # Relative strength: a US benchmark keeps the ASX one.
    rs = screens.screen_params("relative_strength", {"benchmark": {"XNYS": "ARCX:SPY"}})
    assert rs.benchmark == {"XASX": "XASX:XJO", "XNYS": "ARCX:SPY"}


@pytest.mark.parametrize("overrides", [
    {}, {"top_percent": 2}, {"filters": {}}, {"filters": {"min_price": {"USD": 10}}},
    {"filters": {"min_price": {"AUD": None}, "sectors": ["Energy"]}, "require": "all"},
    {"filters": {"min_price": {"EUR": 3}, "min_dollar_volume": {}}, "return_windows": [21]},
])
def test_param_overrides_are_the_smallest_overrides_that_give_the_params_back(overrides):
    params = screens.screen_params("momentum_breakout", overrides)
    smallest = screens.param_overrides(params)
    assert screens.screen_params("momentum_breakout", smallest) == params
    assert screens.param_overrides(screens.MomentumBreakout()) == {}
    assert screens.param_overrides(screens.screen_params("momentum_breakout", {"filters": {"min_price": {"USD": 10}}})) == {
        "filters": {"min_price": {"USD": 10.0}}}


def test_bad_parameters_name_the_field():
    with pytest.raises(pydantic.ValidationError, match=r"min_price\n.*'US' is not a currency code"):
        Filters(min_price={"US": 5})
    with pytest.raises(pydantic.ValidationError, match=r"ma_windows must increase"):
        MomentumBreakout(ma_windows=(20, 10, 50))
    with pytest.raises(pydantic.ValidationError, match=r"top_percent"):
        screens.screen_params("momentum_breakout", {"top_percent": 0})
    with pytest.raises(pydantic.ValidationError, match=r"Extra inputs are not permitted"):
        screens.screen_params("high_52w", {"windw": 10})


# --- the momentum breakout, whole funnel ------------------------------------------------------------------

def breakout_panel():
    """Nine names over six sessions; the last (row 5) is the as-of date. Volume 1,000 unless said.

    A: 10 .. 15 by 1 (the textbook setup)      E: 10 .. 14 then 17 (a range explosion on the last day)
    B: 1.0 .. 1.4 then 1.6 (too cheap)         F: 20, 16, 12, 13, 14, 15 (a V: MA4 not rising)
    C: 20 .. 21 by 0.2 (volume 10: illiquid)   G: like A, with an intraday high of 20 on row 1
    D: 30 .. 25 (falling)                      H: not a member (10 .. 30)   Q: as-of bar quarantined (NaN)
    """
    close = frame({
        "A": [10, 11, 12, 13, 14, 15], "B": [1.0, 1.1, 1.2, 1.3, 1.4, 1.6], "C": [20, 20.2, 20.4, 20.6, 20.8, 21],
        "D": [30, 29, 28, 27, 26, 25], "E": [10, 11, 12, 13, 14, 17], "F": [20, 16, 12, 13, 14, 15],
        "G": [10, 11, 12, 13, 14, 15], "H": [10, 14, 18, 22, 26, 30], "Q": [10, 11, 12, 13, 14, None],
    })
    high = close.copy()
    high.loc[high.index[1], "G"] = 20.0
    volume = pd.DataFrame(1000.0, index=close.index, columns=close.columns)
    volume["C"] = 10.0
    members = close.notna() | True
    members["H"] = False
    info = pd.DataFrame({"currency": "USD", "exchange": "XNYS"}, index=close.columns)
    return UniversePanel.build(close=close, high=high, low=close, volume=volume, members=members, info=info)


BREAKOUT = MomentumBreakout(
    filters=Filters(min_price={"USD": 5}, min_dollar_volume={"USD": 1000}, dollar_volume_window=2),
    return_windows=(2,), top_percent=50, ma_windows=(2, 3, 4), rising_over=1, high_window=5,
    max_below_high=0.05, atr_short=2, atr_long=4, max_atr_ratio=0.95)


def test_the_momentum_breakout_funnel_counts_each_rule_by_hand():
    panel = breakout_panel()
    result = screens.momentum_breakout(panel, BREAKOUT)
    funnel = result.funnel(panel.dates[-1])
    # universe: all but H (8). data: Q's as-of bar is missing (7). price >= 5: B (1.6) out (6).
    # dollar volume over 2 sessions >= 1,000: C (20.8 + 21) x 10 / 2 = 209 out (5). history >= 5 closes: all 6 (5).
    # momentum, 2-session returns ranked among the 7 members with a close: E 17/13-1 = 30.8%, B 1.6/1.3-1 = 23.1%,
    #   A = F = G 15/13-1 = 15.4%, C 21/20.6-1 = 1.9%, D 25/27-1 = -7.4%. Top 50% = fewer than 3.5 better:
    #   E (0), B (1), A/F/G (2 each) pass; D is out (4).
    # trend: F's MA4 (13+14+15+12)/4 = 13.5 is below its previous (16+12+13+14)/4 = 13.75 (3: A, E, G).
    # near the 5-session high: G's high of 20 -> 1 - 15/20 = 25% below (2: A, E).
    # tightening: A's true ranges 1/11, 1/12, 1/13, 1/14 -> ATR2 0.07418 / ATR4 0.08064 = 0.920 <= 0.95;
    #   E's last range 3/14 -> ATR2 0.14560 / ATR4 0.11637 = 1.251 (1: A).
    assert [(f["rule"], f["passed"]) for f in funnel] == [
        ("universe", 8), ("data", 7), ("price", 6), ("dollar_volume", 5), ("history", 5),
        ("momentum", 4), ("trend", 3), ("near_high", 2), ("tightening", 1)]
    # Alone, among the 7 members with a close: price all but B; volume all but C; momentum A B E F G;
    # trend A B C E G; near high A B C E (D 1-25/29 and F 1-15/16 = 6.25% are too far); tightening A, F
    # (0.616) and G (ranges as A's once row 1 has left the ATR4).
    assert [f["alone"] for f in funnel[2:]] == [6, 6, 7, 5, 5, 4, 3]
    hits = result.hits(panel.dates[-1])
    assert list(hits.index) == ["A"]
    # Score: A's percentile, 5 of the 7 returns are <= 15.4% -> 71.43.
    assert close_to(hits.loc["A", "score"], 500 / 7) and hits.loc["A", "rank"] == 1
    assert close_to(hits.loc["A", "atr_ratio"], ((1 / 13 + 1 / 14) / 2) / ((1 / 11 + 1 / 12 + 1 / 13 + 1 / 14) / 4))
    assert close_to(hits.loc["A", "ret_2"], 15 / 13 - 1)


def test_require_all_needs_every_window_in_the_top():
    close = frame({"FAST": [10, 10, 20, 21], "STEADY": [10, 12, 14, 16], "SLOW": [10, 10, 10, 10.5]})
    params = MomentumBreakout(filters=NOTHING, return_windows=(1, 3), top_percent=33, require="all",
                              ma_windows=(1, 2, 3), rising_over=1, high_window=2, max_below_high=1,
                              atr_short=1, atr_long=2, max_atr_ratio=100)
    result = screens.momentum_breakout(UniversePanel.build(close=close), params)
    [momentum] = [r for r in result.rules if r.name == "momentum"]
    # 1 session: STEADY 16/14-1 = 14.3% beats FAST 5% and SLOW 5%. 3 sessions: FAST 110% beats STEADY 60%.
    # Top 33% of 3 = fewer than 0.99 better: only the best of each window; nobody is best in both.
    assert not momentum.passed.iloc[3].any()
    result = screens.momentum_breakout(UniversePanel.build(close=close), params.model_copy(update={"require": "any"}))
    [momentum] = [r for r in result.rules if r.name == "momentum"]
    assert momentum.passed.iloc[3].to_dict() == {"FAST": True, "STEADY": True, "SLOW": False}


# --- BR-13: a history that starts at a rename --------------------------------------------------------------

def test_br13_no_12_month_return_from_a_history_that_starts_at_a_rename():
    # QQQ traded as QQQQ until 2011-03-22; under QQQ the history starts 2011-03-23. The panel (business days
    # from 2010-01-04) holds a year of someone else's prices under the code before that, which must not count.
    index = pd.bdate_range("2010-01-04", "2011-04-15")
    rising = np.linspace(40, 58, len(index))
    close = pd.DataFrame({"QQQ": rising, "SPY": rising}, index=index)
    panel = UniversePanel.build(close=close, history_start={"QQQ": pd.Timestamp("2011-03-23")})
    assert panel.close["QQQ"].first_valid_index() == pd.Timestamp("2011-03-23")
    params = screens.FiftyTwoWeekHigh(filters=NOTHING)
    result = screens.fifty_two_week_high(panel, params)
    as_of = pd.Timestamp("2011-04-15")
    # 2011-03-23 .. 04-15 is 18 business days: far from the 253 closes a 12-month return needs.
    assert math.isnan(result.metrics["ret_252"].loc[as_of, "QQQ"])
    assert not math.isnan(result.metrics["ret_252"].loc[as_of, "SPY"])
    history = next(f for f in result.funnel(as_of) if f["rule"] == "history")
    assert history["passed"] == 1  # SPY only
    assert history["renamed"] == [{"name": "QQQ", "history_start": "2011-03-23"}]
    assert list(result.hits(as_of).index) == ["SPY"]


def test_the_history_rule_names_a_code_change_only_when_it_is_recent_enough_to_be_the_cause():
    # 12 sessions; the rule needs 5 closes (window 4 + 1) in the last 10 sessions (5 more), rows 2 .. 11.
    # OLD took its code in 2001 and has gaps: closes on rows 0, 3, 10, 11. NEW changed code on row 9.
    # FRESH is a listing with 3 bars.
    close = frame({"OLD": [1, None, None, 1, None, None, None, None, None, None, 1, 1],
                   "NEW": [1.0] * 12, "FRESH": [None] * 9 + [1, 1, 1], "FULL": [1.0] * 12})
    starts = {"OLD": pd.Timestamp("2001-07-03"), "NEW": close.index[9]}
    panel = UniversePanel.build(close=close, history_start=starts)
    result = screens.fifty_two_week_high(panel, screens.FiftyTwoWeekHigh(filters=NOTHING, window=4))
    history = next(f for f in result.funnel(close.index[-1]) if f["rule"] == "history")
    assert (history["passed"], history["needed"], history["window"]) == (1, 5, 10)
    # NEW: 3 sessions since its change (rows 9 .. 11) < 5: the change is the cause.
    assert history["renamed"] == [{"name": "NEW", "history_start": close.index[9].date().isoformat()}]
    # OLD: its 2001 change cannot explain it: 3 closes (rows 3, 10, 11) in the 10 sessions (missing bars).
    # FRESH: 3 closes since its first bar on row 9.
    assert history["short"] == [
        {"name": "OLD", "closes": 3, "sessions": 10},
        {"name": "FRESH", "closes": 3, "sessions": 3, "first": close.index[9].date().isoformat()}]


def test_the_history_rule_does_not_depend_on_how_far_back_the_panel_goes():
    # The 5-session high needs 6 closes (window 5 + 1) in the last 11 sessions (6 + 5). GAP has a close
    # every third session (rows 1, 4, .., 19): 4 in rows 9 .. 19, so it fails. Counted from the panel's
    # first row it would have 7 and pass on the 20-row panel but not on the 11-row one.
    close = frame({"GAP": [1.0 if i % 3 == 1 else None for i in range(20)], "FULL": [1.0] * 20})
    params = screens.FiftyTwoWeekHigh(filters=NOTHING, window=5)
    long_ = screens.fifty_two_week_high(UniversePanel.build(close=close), params)
    short = screens.fifty_two_week_high(UniversePanel.build(close=close.iloc[-11:]), params)
    counts = lambda result: [(f["rule"], f["passed"], f["alone"]) for f in result.funnel(close.index[-1])]  # noqa: E731
    assert counts(long_) == counts(short)
    assert [r.passed.iloc[-1].to_dict() for r in long_.rules if r.name == "history"] == [{"GAP": False, "FULL": True}]


# --- relative strength and the equal-weight benchmark -------------------------------------------------------

def test_relative_strength_divides_growth_by_the_index_growth():
    close = frame({"A": [100, 105, 110], "B": [100, 101, 102]})
    level = pd.Series([100, 100, 102], index=close.index)
    params = screens.RelativeStrength(filters=NOTHING, lookback=2, min_excess=0.05, line_window=3, line_within=0)
    result = screens.relative_strength(UniversePanel.build(close=close, benchmark=level), params)
    # A: 1.10 / 1.02 - 1 = 7.84% >= 5%; its line 100/100, 105/100, 110/102 = 1.0784 is at its 3-session high.
    # B: 1.02 / 1.02 - 1 = 0.
    assert close_to(result.metrics["relative"]["A"].iloc[2], 1.10 / 1.02 - 1)
    assert close_to(result.metrics["relative"]["B"].iloc[2], 0.0)
    assert list(result.hits(close.index[2]).index) == ["A"]


def test_without_a_benchmark_no_name_passes_the_benchmark_rule():
    close = frame({"A": [100, 105, 110]})
    result = screens.relative_strength(UniversePanel.build(close=close),
                                       screens.RelativeStrength(filters=NOTHING, lookback=2))
    funnel = {f["rule"]: f["passed"] for f in result.funnel(close.index[2])}
    assert funnel["benchmark"] == 0


def test_a_benchmark_holiday_carries_its_last_level():
    close = frame({"A": [100, 101, 102]})
    level = pd.Series([50.0, 51.0], index=close.index[[0, 1]])
    panel = UniversePanel.build(close=close, benchmark=level)
    assert panel.benchmark.tolist() == [50.0, 51.0, 51.0]


def test_the_equal_weight_index_compounds_the_members_mean_return():
    close = frame({"A": [10, 11, 12.1], "B": [20, 18, 0.0], "OUT": [5, 50, 500]})
    members = close.notna()
    members["OUT"] = False
    level = screens.equal_weight_index(close, members)
    # Day 1: A +10%, B -10% -> mean 0 -> 1.0. Day 2: A +10%, B's zero close is missing (not -100%) -> 1.0 x 1.1.
    assert level.tolist() == pytest.approx([1.0, 1.0, 1.1], abs=1e-12)


# --- no look-ahead ------------------------------------------------------------------------------------------

def random_panel(seed, rows=320, names=30):
    rng = np.random.default_rng(seed)
    index = days(rows, "2022-01-03")
    close = pd.DataFrame(50 * np.exp(np.cumsum(rng.normal(0.001, 0.02, (rows, names)), axis=0)), index=index,
                         columns=[f"N{i:02d}" for i in range(names)])
    spread = np.abs(rng.normal(0, 0.01, (rows, names)))
    volume = pd.DataFrame(rng.integers(1e5, 1e7, (rows, names)).astype(float), index=index, columns=close.columns)
    close.iloc[rng.integers(0, rows, 40), rng.integers(0, names, 40)] = np.nan  # gaps and quarantined bars
    return close, close * (1 + spread), close * (1 - spread), volume


@pytest.mark.parametrize("key", sorted(screens.SCREENS))
def test_changing_the_data_after_the_as_of_date_changes_nothing(key):
    close, high, low, volume = random_panel(7)
    as_of = close.index[260]

    def answer(c, h, lo, v):
        panel = UniversePanel.build(close=c, high=h, low=lo, raw_close=c, volume=v,
                                    benchmark=screens.equal_weight_index(c),
                                    info=pd.DataFrame({"currency": "USD"}, index=c.columns))
        params = screens.screen_params(key, {"filters": {"min_price": {"USD": 1}, "min_dollar_volume": {"USD": 1e5}}})
        result = screens.SCREENS[key].run(panel, params)
        metrics = pd.DataFrame({k: v.loc[as_of] for k, v in result.metrics.items()})
        return result.funnel(as_of), result.hits(as_of), metrics

    before = answer(close, high, low, volume)
    rng = np.random.default_rng(1)
    later = close.index > as_of
    changed = [f.copy() for f in (close, high, low, volume)]
    for f in changed:
        f.loc[later] = f.loc[later] * rng.uniform(0.2, 5.0, f.loc[later].shape)
    # And more sessions after those.
    extra = pd.bdate_range(close.index[-1] + pd.offsets.BDay(), periods=30)
    changed = [pd.concat([f, pd.DataFrame(rng.uniform(1, 500, (30, f.shape[1])), index=extra, columns=f.columns)])
               for f in changed]
    after = answer(*changed)
    assert before[0] == after[0]
    pd.testing.assert_frame_equal(before[1], after[1])
    pd.testing.assert_frame_equal(before[2], after[2])
    assert before[0][-1]["passed"] >= 0


# --- the replay ---------------------------------------------------------------------------------------------

def replay_result():
    # X: 10, 11, 12, 13, 12, 14, 15; Y falls 20 .. 14. Screen: close at the 2-session high, 3 closes of history.
    close = frame({"X": [10, 11, 12, 13, 12, 14, 15], "Y": [20, 19, 18, 17, 16, 15, 14]})
    params = screens.FiftyTwoWeekHigh(filters=NOTHING, window=2, within=0)
    result = screens.fifty_two_week_high(UniversePanel.build(close=close), params)
    return close, result


def test_the_replay_measures_new_hits_forward_against_the_same_day_universe():
    close, result = replay_result()
    # X is at its 2-session high on rows 2, 3, 5 and 6 (row 4: 12 < 13); new entries on rows 2 and 5.
    report = screens.replay(result, close, start=close.index[2], end=close.index[5], horizons=(1, 2))
    s = report.summary
    assert (s["sessions"], s["hits"], s["days_with_hits"], s["names"]) == (4, 2, 2, 1)
    one, two = s["horizons"]
    # 1 session: row 2 13/12-1 = 8.333%, row 5 15/14-1 = 7.143% -> mean 7.738%, both up.
    assert one["hits"]["n"] == 2 and close_to(one["hits"]["mean"], (13 / 12 + 15 / 14 - 2) / 2)
    assert one["hits"]["hit_rate"] == 1.0
    # Universe, rows 2..5, X and Y: +8.333%, -7.692%, +16.667%, +7.143%, -5.556%, -5.882%, -6.25%, -6.667%
    # -> mean 0.0120%, 3 of 8 up.
    universe = [13 / 12, 12 / 13, 14 / 12, 15 / 14, 17 / 18, 16 / 17, 15 / 16, 14 / 15]
    assert one["universe"]["n"] == 8 and close_to(one["universe"]["mean"], sum(universe) / 8 - 1)
    assert one["universe"]["hit_rate"] == 3 / 8
    # Excess: row 2, 8.333% - (8.333% - 5.556%)/2 = 6.944%; row 5, 7.143% - (7.143% - 6.667%)/2 = 6.905%.
    excess_2 = (13 / 12 - 1) - ((13 / 12 - 1) + (17 / 18 - 1)) / 2
    excess_5 = (15 / 14 - 1) - ((15 / 14 - 1) + (14 / 15 - 1)) / 2
    assert close_to(one["excess"], (excess_2 + excess_5) / 2)
    # 2 sessions: row 2 -> 12/12-1 = 0 (not a gain); row 5 has no close two sessions later yet: pending.
    assert two["hits"] == {"n": 1, "mean": 0.0, "median": 0.0, "hit_rate": 0.0} and two["pending"] == 1
    assert two["universe"]["n"] == 6
    assert report.hits[["name", "fwd_1"]].values.tolist() == [["X", pytest.approx(1 / 12)], ["X", pytest.approx(1 / 14)]]
    assert report.daily["hits"].tolist() == [1, 0, 0, 1]


def test_the_replay_can_count_every_day_a_name_stays_on_the_list():
    close, result = replay_result()
    report = screens.replay(result, close, start=close.index[2], end=close.index[5], horizons=(1,), only_new=False)
    # Rows 2, 3 and 5: the continuation on row 3 counts too.
    assert report.summary["hits"] == 3
    assert report.hits["date"].tolist() == list(close.index[[2, 3, 5]])


def test_a_name_that_stops_trading_is_measured_to_its_last_price():
    close = frame({"GONE": [10, 11, 12, None, None]})
    params = screens.FiftyTwoWeekHigh(filters=NOTHING, window=1, within=0)
    result = screens.fifty_two_week_high(UniversePanel.build(close=close), params)
    report = screens.replay(result, close, start=close.index[1], end=close.index[2], horizons=(2,), only_new=False)
    # Row 1: 11 -> its last price 12 (row 3 has none) = +9.09%; row 2: 12 -> 12 = 0%. Never -100%.
    assert report.summary["horizons"][0]["hits"]["mean"] == pytest.approx((12 / 11 - 1 + 0.0) / 2)


def test_a_universe_in_two_panels_is_pooled():
    close, result = replay_result()
    one = screens.replay(result, close, start=close.index[2], end=close.index[5], horizons=(1,))
    both = screens.replay_many([(result, close), (result, close.copy())], start=close.index[2], end=close.index[5],
                               horizons=(1,))
    # Twice the hits and twice the universe; the same means, hit rates and excess; the days add up.
    h1, h2 = one.summary["horizons"][0], both.summary["horizons"][0]
    assert (h2["hits"]["n"], h2["universe"]["n"]) == (2 * h1["hits"]["n"], 2 * h1["universe"]["n"])
    assert h2["hits"]["mean"] == pytest.approx(h1["hits"]["mean"]) and h2["excess"] == pytest.approx(h1["excess"])
    assert both.daily["hits"].tolist() == [2, 0, 0, 2] and both.summary["sessions"] == 4


def test_row_ranks_match_pandas_including_ties_and_gaps():
    rng = np.random.default_rng(2)
    values = rng.integers(0, 6, (40, 15)).astype(float)  # many ties
    values[rng.random((40, 15)) < 0.25] = np.nan
    expected = pd.DataFrame(values).rank(axis=1, method="max").to_numpy()
    np.testing.assert_array_equal(screens._rank_max(values), expected)
