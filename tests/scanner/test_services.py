"""Scans through the services on the panels: real slices of ../shared/marketdata checked against plain pandas,
quarantined bars, BR-13 with the symbol master, no look-ahead, two calendars, errors, the daily hook, replays."""
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from marketdata.models import IndexMembership, Instrument, PriceBar, SymbolChange
from marketdata.panels import refresh_panels
from scanner import services
from scanner.models import SavedScreen, ScanRun
from tests.scanner.conftest import ASX_AS_OF, US_AS_OF, US_TICKERS, rising

pytestmark = pytest.mark.django_db


def hit_symbols(run):
    return [hit.instrument.symbol for hit in run.hits.select_related("instrument").order_by("rank")]


def funnel(run):
    return [(entry["rule"], entry["passed"]) for entry in run.funnel]


# --- a real slice of the S&P 500 -----------------------------------------------------------------------------

def independent_breakout(path, day, top_percent):
    """The momentum breakout with default windows, recomputed with plain pandas from the file itself."""
    t = pq.read_table(path).to_pandas()
    t["date"] = pd.to_datetime(t["date"])
    factor = t["adjusted_close"] / t["close"]

    def wide(values):
        return t.assign(v=values).pivot(index="date", columns="ticker", values="v")

    close, high, low = wide(t["adjusted_close"]), wide(t["high"] * factor), wide(t["low"] * factor)
    i = close.index.get_loc(pd.Timestamp(day))
    rows = {}
    for name in close.columns:
        c = close[name]
        ma = {w: c.rolling(w).mean() for w in (10, 20, 50)}
        trend = (c.iloc[i] > ma[10].iloc[i] > ma[20].iloc[i] > ma[50].iloc[i]
                 and all(ma[w].iloc[i] > ma[w].iloc[i - 5] for w in (10, 20, 50)))
        near = c.iloc[i] >= 0.85 * high[name].iloc[i - 125:i + 1].max()
        previous = c.shift(1)
        ranges = (np.fmax(high[name], previous) - np.fmin(low[name], previous)) / previous
        ratio = ranges.rolling(10).mean().iloc[i] / ranges.rolling(50).mean().iloc[i]
        rows[name] = {"trend": trend, "near": near, "tight": ratio <= 0.9,
                      **{w: c.iloc[i] / c.iloc[i - w] - 1 for w in (21, 63, 126)}}
    table = pd.DataFrame(rows).T
    n = len(table)
    top = np.zeros(n, dtype=bool)
    percentiles = []
    for w in (21, 63, 126):
        values = table[w].astype(float)
        better = np.array([(values > v).sum() for v in values])
        top |= better < top_percent / 100 * n - 1e-9
        percentiles.append(np.array([(values <= v).sum() for v in values]) / n * 100)
    table["score"] = np.mean(percentiles, axis=0)
    table["hit"] = top & table["trend"].astype(bool) & table["near"].astype(bool) & table["tight"].astype(bool)
    return table


def test_a_scan_of_a_real_sp500_slice_matches_plain_pandas(us_loaded, us_slice):
    run = services.scan(screen="momentum_breakout", universe="SP500", as_of=US_AS_OF, params={"top_percent": 10})
    assert run.status == "success", run.error
    expected = independent_breakout(us_slice, US_AS_OF, 10)
    hits = expected[expected["hit"]].sort_values("score", ascending=False)
    # Recomputed by hand-written pandas above; pinned here so a reader sees them.
    assert sorted(hits.index) == ["CDW", "EXR", "GPS", "HPQ", "KIM", "STX"]
    assert hit_symbols(run) == list(hits.index)
    for hit in run.hits.select_related("instrument"):
        assert hit.score == pytest.approx(hits.loc[hit.instrument.symbol, "score"], rel=1e-12)
        assert hit.metrics["ret_63"] == pytest.approx(expected.loc[hit.instrument.symbol, 63], rel=1e-9)
        assert len(hit.sparkline) == 63 and hit.sparkline[-1] == pytest.approx(hit.metrics["close"])
    members = IndexMembership.objects.filter(index_code="SP500").as_of(US_AS_OF).count()
    steps = dict(funnel(run))
    # Every member counts; only the 24 names of the slice have bars; all are liquid and have the history.
    assert (steps["universe"], steps["data"], steps["price"], steps["dollar_volume"], steps["history"]) == (
        members, 24, 24, 24, 24)
    assert steps["momentum"] == int((expected[[21, 63, 126]].rank(method="max") > 24 - 2.4).any(axis=1).sum())
    labels = {entry["rule"]: entry["label"] for entry in run.funnel}
    # An S&P 500 scan names only its own currency's minimums (the defaults also hold AUD ones).
    assert labels["price"] == "Close as traded at least USD 5"
    assert labels["dollar_volume"] == "Average traded value over 20 sessions at least USD 20M"
    assert run.as_of == US_AS_OF and run.context["sessions"] == {"XNYS": "2021-04-21"}
    assert run.universe == "SP500" and run.hit_count == 6 and run.context["seconds"] > 0


def test_the_default_as_of_is_the_latest_session_with_data(us_loaded):
    run = services.scan(screen="high_52w", universe="sp500", params={"window": 100})
    assert run.status == "success", run.error
    # The slice ends on Wed 2021-04-21; the scan asked for today.
    assert run.as_of == US_AS_OF and run.context["requested_as_of"] == timezone.localdate().isoformat()


# --- a real slice of the ASX, relative strength against XJO --------------------------------------------------

def test_relative_strength_of_real_asx_names_against_the_real_xjo(asx_loaded, asx_slice):
    run = services.scan(screen="relative_strength", universe="ASX300", as_of=ASX_AS_OF)
    assert run.status == "success", run.error
    assert run.context["benchmarks"] == {"XASX": "XASX:XJO"}
    names, index = (pq.read_table(p).to_pandas() for p in asx_slice)
    xjo = index.set_index(pd.to_datetime(index["date"]))["close"]
    closes = names.assign(date=pd.to_datetime(names["date"])).pivot(index="date", columns="ticker", values="close")
    closes = closes.reindex(xjo.index).ffill()  # the calendar is XJO's sessions; a name's last close carries
    t, then = xjo.index.get_loc(pd.Timestamp(ASX_AS_OF)), xjo.index.get_loc(pd.Timestamp(ASX_AS_OF)) - 252
    relative = (closes.iloc[t] / closes.iloc[then]) / (xjo.iloc[t] / xjo.iloc[then]) - 1
    line = closes.div(xjo, axis=0)
    at_high = 1 - line.iloc[t] / line.iloc[t - 62:t + 1].max() <= 0.02
    expected = relative[(relative >= 0.10) & at_high].sort_values(ascending=False)
    assert hit_symbols(run) == list(expected.index)
    assert len(expected) >= 2  # a real answer, not an empty one
    for hit in run.hits.select_related("instrument"):
        assert hit.metrics["relative"] == pytest.approx(relative[hit.instrument.symbol], rel=1e-9)
        assert hit.metrics["index_return"] == pytest.approx(xjo.iloc[t] / xjo.iloc[then] - 1, rel=1e-12)


def test_a_benchmark_that_is_not_loaded_fails_the_run_naming_it(universe):
    universe("TEST", {"A": rising(300)}, exchange="XASX")
    run = services.scan(screen="relative_strength", universe="TEST", params={"filters": {}})
    assert run.status == "failed"
    assert "benchmark 'XASX:XJO' for XASX is not an instrument" in run.error


def test_the_us_benchmark_is_the_equal_weight_universe(universe):
    # A doubles over the year, B is flat: the equal-weight index gains about half of A's move; A beats it.
    n = 300
    universe("TEST", {"A": list(np.linspace(10, 20, n)), "B": [10.0] * n})
    run = services.scan(screen="relative_strength", universe="TEST", params={"filters": {}, "min_excess": 0.1})
    assert run.status == "success", run.error
    assert run.context["benchmarks"] == {"XNYS": "equal_weight"}
    assert hit_symbols(run) == ["A"]


# --- quarantined bars, BR-07, BR-13 --------------------------------------------------------------------------

def test_quarantined_bars_are_skipped(universe):
    # SPIKE trades at 10, then 10.5 on the last day; four sessions earlier a bad print of 100 is quarantined.
    closes = {"SPIKE": [10.0] * 20 + [10.5], "SOFT": [10.0] * 20 + [9.9]}
    ids = universe("TEST", closes)
    bad = PriceBar.objects.get(instrument_id=ids["SPIKE"], date=pd.bdate_range("2023-01-02", periods=21)[16].date())
    PriceBar.objects.filter(pk=bad.pk).update(close=100.0, high=100.0, quarantined=True, updated_at=timezone.now())
    refresh_panels()
    params = {"filters": {}, "window": 5, "within": 0}
    run = services.scan(screen="high_52w", universe="TEST", as_of=dt.date(2023, 1, 30), params=params)
    # The quarantined 100 skipped, 10.5 is SPIKE's 5-session high; SOFT's 9.9 is 1% under its 10.
    assert hit_symbols(run) == ["SPIKE"]
    assert run.hits.get().metrics["high_5"] == 10.5
    # Read as a price, the 100 would leave 10.5 89.5% under the high: no hit.
    PriceBar.objects.filter(pk=bad.pk).update(quarantined=False, updated_at=timezone.now())
    refresh_panels()
    again = services.scan(screen="high_52w", universe="TEST", as_of=dt.date(2023, 1, 30), params=params)
    assert hit_symbols(again) == []


def test_a_quarantined_bar_on_the_as_of_session_means_no_data_that_day(universe):
    ids = universe("TEST", {"A": rising(30), "B": rising(30)})
    last = PriceBar.objects.filter(instrument_id=ids["A"]).latest("date")
    PriceBar.objects.filter(pk=last.pk).update(quarantined=True, updated_at=timezone.now())
    refresh_panels()
    run = services.scan(screen="high_52w", universe="TEST", as_of=last.date, params={"filters": {}, "window": 5})
    assert funnel(run)[:2] == [("universe", 2), ("data", 1)]


def test_br07_a_zero_close_stored_as_missing_never_gives_minus_100_percent(universe):
    # The ingest stores a zero close as NULL (flagged): in the panel it is missing, never a price.
    ids = universe("TEST", {"Z": [10.00, 10.20, None, 10.10, 10.30]})
    days = pd.bdate_range("2023-01-02", periods=5).date
    Instrument.objects.get(pk=ids["Z"]).bars.create(date=days[2], close=None, volume=0, source="test", flags=1)
    refresh_panels()
    run = services.scan(screen="high_52w", universe="TEST", as_of=days[4],
                        params={"filters": {}, "window": 2, "within": 0})
    [hit] = run.hits.all()
    # 10.30 is the 2-session high; its 2-session return looks back to the missing close and takes the last
    # valid one, 10.20: 10.30 / 10.20 - 1 = +0.980% (a zero read as a price: division by zero, or -100% before).
    assert hit.score == pytest.approx(10.30 / 10.20 - 1)
    assert hit.sparkline == [10.00, 10.20, None, 10.10, 10.30]


def test_br13_no_12_month_return_for_qqq_in_april_2011_from_a_history_starting_in_march(universe):
    # The provider stored QQQ's history until 2011-03-22 under QQQQ; QQQ itself starts 2011-03-23. Under the
    # QQQ code there are also older bars of an earlier listing (a reused code) that must not count.
    days = pd.bdate_range("2010-03-01", "2011-04-15")
    change = dt.date(2011, 3, 23)
    old = [(d.date(), 40 + i * 0.05) for i, d in enumerate(days) if d.date() < change]
    new = [(d.date(), 40 + i * 0.05) for i, d in enumerate(days) if d.date() >= change]
    ids = universe("NDX", {"QQQQ": [c for _, c in old] + [None] * len(new),
                           "QQQ": [5.0] * 30 + [None] * (len(old) - 30) + [c for _, c in new],
                           "SPY": [40 + i * 0.05 for i in range(len(days))]}, start=days[0].date(), exchange="XNAS")
    SymbolChange.objects.create(exchange="XNAS", old_symbol="QQQQ", new_symbol="QQQ", date=change, source="test")
    run = services.scan(screen="high_52w", universe="NDX", as_of=dt.date(2011, 4, 15), params={"filters": {}})
    assert run.status == "success", run.error
    history = next(entry for entry in run.funnel if entry["rule"] == "history")
    # QQQ has 18 sessions under its code (2011-03-23 .. 04-15): no 12-month return, and the run says why.
    assert history["renamed"] == [{"name": "XNAS:QQQ", "history_start": "2011-03-23"}]
    assert history["note"].startswith("History starts at a code change fewer than 253 sessions ago")
    assert history["note"].endswith(": XNAS:QQQ since 2011-03-23.")
    assert "QQQ" not in hit_symbols(run) and "SPY" in hit_symbols(run)
    assert ids["QQQ"] not in set(run.hits.values_list("instrument_id", flat=True))


def test_a_history_that_is_short_for_missing_bars_is_not_blamed_on_an_old_code_change(universe):
    # GAPPY took its code in 2001 and has a bar every third session (rows 0, 3, .., 27); FRESH lists on
    # row 26. The 12-session high needs 13 closes in the last 18 sessions (13 + 5). As of row 27
    # (2023-02-08): GAPPY has 6 (rows 12, 15, .., 27), FRESH 2 since 2023-02-07; neither is a code change's doing.
    gappy = [None if i % 3 else 10.0 + i for i in range(30)]
    universe("TEST", {"GAPPY": gappy, "FULL": rising(30), "FRESH": [None] * 26 + rising(4)})
    SymbolChange.objects.create(exchange="XNYS", old_symbol="OLDG", new_symbol="GAPPY", date=dt.date(2001, 7, 3),
                                source="test")
    run = services.scan(screen="high_52w", universe="TEST", as_of=dt.date(2023, 2, 8),
                        params={"filters": {}, "window": 12})
    history = next(entry for entry in run.funnel if entry["rule"] == "history")
    assert (history["passed"], history["needed"], history["window"], history["renamed"]) == (1, 13, 18, [])
    assert history["short"] == [
        {"name": "XNYS:FRESH", "closes": 2, "sessions": 2, "first": "2023-02-07"},
        {"name": "XNYS:GAPPY", "closes": 6, "sessions": 18}]
    assert history["note"] == ("Too few valid closes (13 needed in the last 18 sessions): XNYS:FRESH 2 since its "
                               "first bar on 2023-02-07, XNYS:GAPPY 6 (missing bars).")


# --- no look-ahead ---------------------------------------------------------------------------------------------

def test_bars_after_the_as_of_date_change_nothing(universe, make_bars):
    n = 140
    rng = np.random.default_rng(5)
    closes = {f"N{i}": list(np.round(20 * np.exp(np.cumsum(rng.normal(0.002, 0.02, n))), 4)) for i in range(12)}
    universe("TEST", closes)
    as_of = pd.bdate_range("2023-01-02", periods=n)[-1].date()
    params = {"filters": {}, "top_percent": 30, "return_windows": [21, 63]}
    before = services.scan(screen="momentum_breakout", universe="TEST", as_of=as_of, params=params)
    later = pd.bdate_range(as_of + dt.timedelta(days=1), periods=30).date
    for i in range(12):
        make_bars(f"N{i}", "XNYS", [(d, 1.0, 500.0, 1.0, rng.uniform(1, 500), 1e9) for d in later])
    refresh_panels()
    after = services.scan(screen="momentum_breakout", universe="TEST", as_of=as_of, params=params)
    assert after.status == before.status == "success"
    assert after.funnel == before.funnel
    rows = lambda run: [(h.instrument_id, h.rank, h.score, h.metrics, h.sparkline) for h in run.hits.order_by("rank")]  # noqa: E731
    assert rows(after) == rows(before)


# --- two calendars ----------------------------------------------------------------------------------------------

def test_a_universe_on_two_calendars_is_screened_on_each_one_s_sessions(universe):
    universe("MIX", {"US1": rising(30), "US2": [10.0] * 30}, exchange="XNYS")
    universe("MIX", {"AU1": rising(30, 2.0, 0.01)}, exchange="XASX", start=dt.date(2023, 1, 3))
    run = services.scan(screen="high_52w", universe="MIX", params={"filters": {}, "window": 10, "within": 0})
    assert run.status == "success", run.error
    # Sessions: XNYS 2023-01-02 + 29 business days = 2023-02-10; XASX from 01-03, 30 days = 2023-02-13.
    assert run.context["sessions"] == {"XASX": "2023-02-13", "XNYS": "2023-02-10"}
    assert run.as_of == dt.date(2023, 2, 13)
    # The funnel adds up both calendars: 3 members; US2 is flat (at its high too: close = high).
    assert funnel(run)[0] == ("universe", 3)
    mixed = services.scan(screen="high_52w", universe="MIX", params={"window": 10, "within": 0,
                                                                     "filters": {"min_dollar_volume": {}}})
    assert mixed.funnel[2]["label"] == "Close as traded at least AUD 1, USD 5"
    assert sorted(hit_symbols(run)) == ["AU1", "US1", "US2"]


def test_br15_a_dual_listing_is_two_names_never_one_series(universe):
    # BHP on the ASX (AUD) and BHP on the NYSE (USD) are different series; the scan keys them by exchange.
    universe("MIX", {"BHP": rising(30, 45.0, 0.1)}, exchange="XASX")
    universe("MIX", {"BHP": rising(30, 57.0, 0.2)}, exchange="XNYS")
    run = services.scan(screen="high_52w", universe="MIX", params={"filters": {}, "window": 10, "within": 0})
    hits = {hit.instrument.key: hit for hit in run.hits.select_related("instrument")}
    assert set(hits) == {"XASX:BHP", "XNYS:BHP"}
    assert hits["XASX:BHP"].instrument.currency == "AUD" and hits["XNYS:BHP"].instrument.currency == "USD"
    # Each its own closes: 45.0 + 29 x 0.1 = 47.9 and 57.0 + 29 x 0.2 = 62.8.
    assert (hits["XASX:BHP"].metrics["price"], hits["XNYS:BHP"].metrics["price"]) == (pytest.approx(47.9),
                                                                                      pytest.approx(62.8))


def test_a_calendar_without_bars_in_the_window_is_named(universe):
    universe("MIX", {"US1": rising(30)}, exchange="XNYS")
    universe("MIX", {"AU1": rising(30)}, exchange="XASX", start=dt.date(2020, 1, 1))
    run = services.scan(screen="high_52w", universe="MIX", as_of=dt.date(2023, 2, 10),
                        params={"filters": {}, "window": 10})
    assert run.status == "success" and run.context["calendars_without_bars"] == ["XASX"]


# --- bad requests ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field, message", [
    ({"screen": "nope", "universe": "TEST"}, "screen", "unknown screen 'nope' (known: momentum-asx, momentum-us, "
                                                     "momentum_breakout, high_52w, relative_strength)"),
    ({"screen": "high_52w", "universe": "NOPE"}, "universe", "unknown universe 'NOPE' (known: TEST)"),
    ({"screen": "high_52w"}, "universe", "give a universe, e.g. SP500, ASX300 or SP500+ASX300"),
    ({"screen": "high_52w", "universe": "TEST", "params": {"within": 2}}, "params.within",
     "within: Input should be less than or equal to 1"),
    ({"screen": "momentum_breakout", "universe": "TEST", "params": {"filters": {"min_price": {"EURO": 1}}}},
     "params.filters.min_price", "filters.min_price: Value error, 'EURO' is not a currency code (e.g. USD, AUD)"),
    ({"screen": "high_52w", "universe": "TEST", "as_of": dt.date(2999, 1, 1)}, "as_of", "as_of 2999-01-01 is in the future"),
])
def test_a_bad_request_names_the_field_and_records_nothing(universe, kwargs, field, message):
    universe("TEST", {"A": rising(5)})
    with pytest.raises(services.ScanError) as error:
        services.start_scan(**kwargs)
    assert error.value.field == field
    assert str(error.value).startswith(message)
    assert not ScanRun.objects.exists()


def test_panels_older_than_the_database_fail_the_run_naming_the_command(universe, make_bars):
    universe("TEST", {"A": rising(5)})
    make_bars("A", "XNYS", [(dt.date(2023, 1, 9), 1, 1, 1, 1, 1)])  # a new bar, panels not refreshed
    run = services.scan(screen="high_52w", universe="TEST", params={"window": 2})
    assert run.status == "failed" and "run `manage.py panels --exchange XNYS`" in run.error
    assert not run.hits.exists() and run.finished_at is not None


# --- changes since the previous run ---------------------------------------------------------------------------

def test_changes_name_the_new_and_the_dropped_names(universe):
    # UP rises all along; LATE slides, then rises from row 20 on; GONE rises, then slides from row 20.
    n = 30
    universe("TEST", {"UP": rising(n), "LATE": rising(20, 10.0, -0.01) + rising(10, 10.1),
                      "GONE": rising(20) + rising(10, 9.0, -0.01)})
    days = pd.bdate_range("2023-01-02", periods=n).date
    params = {"filters": {}, "window": 5, "within": 0}
    first = services.scan(screen="high_52w", universe="TEST", as_of=days[18], params=params)
    second = services.scan(screen="high_52w", universe="TEST", as_of=days[-1], params=params)
    assert sorted(hit_symbols(first)) == ["GONE", "UP"] and sorted(hit_symbols(second)) == ["LATE", "UP"]
    changes = second.changes()
    assert changes["previous"] == first
    assert [i.symbol for i in changes["new"]] == ["LATE"] and [i.symbol for i in changes["dropped"]] == ["GONE"]
    # Other parameters are another ad-hoc screen: nothing earlier to compare with.
    other = services.scan(screen="high_52w", universe="TEST", as_of=days[-1], params={**params, "within": 0.5})
    assert other.changes() == {"previous": None, "new": [], "dropped": []}


def test_changes_compare_only_with_runs_the_requester_may_see(universe, alice, bob):
    n = 30
    universe("TEST", {"UP": rising(n), "GONE": rising(20) + rising(10, 9.0, -0.01)})
    days = pd.bdate_range("2023-01-02", periods=n).date
    params = {"filters": {}, "window": 5, "within": 0}
    bobs = services.scan(screen="high_52w", universe="TEST", as_of=days[18], params=params)
    ScanRun.objects.filter(pk=bobs.pk).update(requested_by=bob)
    alices = services.scan(screen="high_52w", universe="TEST", as_of=days[-1], params=params)
    ScanRun.objects.filter(pk=alices.pk).update(requested_by=alice)
    alices.refresh_from_db()
    assert alices.changes()["previous"] is None  # bob's earlier run is his, not a baseline for alice
    desk = services.scan(screen="high_52w", universe="TEST", as_of=days[17], params=params)  # a command's run
    assert alices.changes()["previous"] == desk


# --- parameters over the defaults --------------------------------------------------------------------------

@pytest.fixture
def sectors(universe):
    """IT and OIL rise from 10 on 30 sessions of 1M shares (about USD 11M a day, under the default 20M)."""
    ids = universe("TEST", {"IT": rising(30), "OIL": rising(30)})
    Instrument.objects.filter(pk=ids["IT"]).update(sector="Information Technology")
    Instrument.objects.filter(pk=ids["OIL"]).update(sector="Energy")
    return ids


def test_overrides_merge_into_the_defaults_and_the_saved_screen_key_by_key(sectors):
    run = services.scan(screen="high_52w", universe="TEST",
                        params={"window": 5, "filters": {"sectors": ["Information Technology"]}})
    # The sector filter keeps the default price and traded-value minimums (it used to drop them: {}).
    assert run.params["filters"]["min_price"] == {"USD": 5.0, "AUD": 1.0}
    assert run.params["filters"]["min_dollar_volume"] == {"USD": 20e6, "AUD": 5e6}
    # IT's 20-session value is about 12.4 x 1M = USD 12.4M < USD 20M.
    assert funnel(run)[2:5] == [("sector", 1), ("price", 1), ("dollar_volume", 0)]
    services.save_screen(name="it-highs", screen="high_52w", universe="TEST",
                         params={"window": 5, "filters": {"sectors": ["information technology"],
                                                          "min_dollar_volume": {"USD": 1e6}}})
    run = services.scan(screen="it-highs", params={"filters": {"min_price": {"USD": 10}}})
    # Defaults, then the saved screen's, then the request's, each key by key.
    assert run.params["window"] == 5 and run.params["filters"] == {
        "min_price": {"USD": 10.0, "AUD": 1.0}, "min_dollar_volume": {"USD": 1e6, "AUD": 5e6},
        "dollar_volume_window": 20, "sectors": ["information technology"], "exchanges": []}
    assert hit_symbols(run) == ["IT"]
    replay = services.start_replay(screen="it-highs", start=dt.date(2023, 2, 1), end=dt.date(2023, 2, 10),
                                   params={"filters": {"min_price": {"USD": 10}}})
    assert replay.params == run.params


def test_a_run_saved_as_a_screen_runs_again_with_exactly_its_parameters(sectors):
    run = services.scan(screen="high_52w", universe="TEST",
                        params={"window": 5, "filters": {"min_price": {"AUD": None}, "min_dollar_volume": {}}})
    assert run.params["filters"]["min_price"] == {"USD": 5.0} and run.params["filters"]["min_dollar_volume"] == {}
    # What the run's page posts to "Save screen": the overrides that give its parameters.
    overrides = services.overrides_of(run)
    assert overrides == {"window": 5, "filters": {"min_price": {"AUD": None}, "min_dollar_volume": {}}}
    saved = services.save_screen(name="mine", screen="high_52w", universe="TEST", params=overrides)
    assert saved.params == {"window": 5, "filters": {"min_price": {"AUD": None}, "min_dollar_volume": {}}}
    assert services.scan(screen="mine").params == run.params


def test_a_sector_no_instrument_of_the_universe_has_is_named_in_the_funnel(sectors):
    run = services.scan(screen="high_52w", universe="TEST",
                        params={"window": 5, "filters": {"sectors": ["energy ", "Enrgy"], "min_dollar_volume": {}}})
    assert run.status == "success", run.error
    sector = next(entry for entry in run.funnel if entry["rule"] == "sector")
    assert (sector["passed"], sector["unmatched"]) == (1, ["Enrgy"])
    assert sector["note"] == ("No instrument of TEST has sector 'Enrgy'; known sectors: 'Energy', "
                              "'Information Technology'.")
    assert hit_symbols(run) == ["OIL"]


# --- saved screens and the daily hook ---------------------------------------------------------------------------

def test_a_saved_screen_keeps_its_universe_and_parameters(universe):
    universe("TEST", {"A": rising(30)})
    saved = services.save_screen(name="Highs-Test", screen="high_52w", universe="test", params={"window": 5})
    assert (saved.name, saved.universe, saved.params) == ("highs-test", "TEST", {"window": 5})
    run = services.scan(screen="highs-test")
    assert (run.saved_screen, run.screen, run.universe, run.params["window"]) == (saved, "high_52w", "TEST", 5)
    # A request's overrides go over the saved parameters.
    assert services.scan(screen="highs-test", params={"within": 0.5}).params["window"] == 5
    with pytest.raises(services.ScanError, match="name 'high_52w' is a built-in screen's key"):
        services.save_screen(name="high_52w", screen="high_52w", universe="TEST")
    with pytest.raises(services.ScanError, match=r"name 'bad name!'"):
        services.save_screen(name="bad name!", screen="high_52w", universe="TEST")


def test_the_daily_hook_runs_the_daily_screens_of_the_exchange_once(universe):
    universe("TEST", {"A": rising(30)})
    universe("AUS", {"B": rising(30)}, exchange="XASX")
    services.save_screen(name="us-highs", screen="high_52w", universe="TEST", params={"window": 5, "filters": {}})
    services.save_screen(name="au-highs", screen="high_52w", universe="AUS", params={"window": 5})
    services.save_screen(name="not-daily", screen="high_52w", universe="TEST", daily=False)
    session = dt.date(2023, 2, 10)
    detail = services.scan_daily(exchange="XNYS", session=session)
    [ran] = detail["ran"]
    assert (ran["screen"], ran["status"], ran["hits"]) == ("us-highs", "success", 1)
    # The two default screens' universes (SP500, ASX300) are not loaded here: skipped, with the reason.
    assert {s["screen"] for s in detail["skipped"]} == {"momentum-us", "momentum-asx"}
    assert "unknown universe 'SP500'" in next(s["reason"] for s in detail["skipped"] if s["screen"] == "momentum-us")
    again = services.scan_daily(exchange="XNYS", session=session)
    assert again["ran"] == [] and f"already ran for {session}" in again["skipped"][-1]["reason"]
    assert ScanRun.objects.filter(saved_screen__name="us-highs").count() == 1
    assert not ScanRun.objects.filter(saved_screen__name__in=["au-highs", "not-daily"]).exists()


def test_the_daily_hook_raises_after_running_the_others_when_a_screen_fails(universe):
    universe("TEST", {"A": rising(30)})
    services.save_screen(name="a-rs", screen="relative_strength", universe="TEST",
                         params={"benchmark": {"XNYS": "XNYS:NOPE"}})
    services.save_screen(name="b-highs", screen="high_52w", universe="TEST", params={"window": 5})
    with pytest.raises(services.ScanError, match=r"scans failed: a-rs \(run \d+\): benchmark 'XNYS:NOPE'"):
        services.scan_daily(exchange="XNYS", session=dt.date(2023, 2, 10))
    assert ScanRun.objects.get(saved_screen__name="b-highs").status == "success"


def test_the_daily_chain_runs_the_saved_screens_after_the_ingest(settings, make_bars):
    from marketdata import daily
    from tests.marketdata.test_daily import US_EVENING, US_SESSION, preload, real_bars  # noqa: F401
    from marketdata.providers.localserver import ProviderServer

    preload()
    for symbol in ("AAPL", "MSFT", "BRK.B"):
        IndexMembership.objects.create(index_code="SP500", instrument=Instrument.objects.get(symbol=symbol),
                                       start=dt.date(2020, 1, 2))
    with ProviderServer(real_bars()) as running:
        settings.PROVIDER_URLS, settings.PROVIDER_RATE, settings.PROVIDER_RETRIES = running.urls, 0, 1
        settings.TIINGO_API_KEY = "test-token"
        settings.DAILY_PROVIDERS = {"XNYS": "tiingo", "XASX": "yahoo"}
        settings.DAILY_HOOKS = ["scanner.services.scan_daily"]
        run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert run.errors == []
    assert [(s["step"], s["status"]) for s in run.steps] == [
        ("ingest", "ok"), ("panels", "ok"), ("hook:scanner.services.scan_daily", "ok")]
    [ran] = run.steps[-1]["detail"]["ran"]
    scan = ScanRun.objects.get(pk=ran["run"])
    # The bars start in March 2021: too short a history for a 6-month return, so the funnel stops there.
    assert (scan.saved_screen.name, scan.status, scan.as_of) == ("momentum-us", "success", US_SESSION)
    assert dict(funnel(scan))["data"] == 3 and dict(funnel(scan))["history"] == 0


# --- replays -------------------------------------------------------------------------------------------------

def test_a_replay_finds_on_each_day_what_a_scan_as_of_that_day_finds(us_loaded):
    params = {"top_percent": 10}
    replay = services.start_replay(screen="momentum_breakout", universe="SP500", start=dt.date(2021, 3, 1),
                                   end=dt.date(2021, 3, 31), params=params, horizons=[5, 10], only_new=False)
    replay = services.run_replay(replay)
    assert replay.status == "success", replay.error
    by_day = {}
    for hit in replay.hits:
        by_day.setdefault(hit["date"], []).append(hit["key"].split(":")[1])
    for day in ("2021-03-01", "2021-03-15", "2021-03-31"):
        run = services.scan(screen="momentum_breakout", universe="SP500", as_of=dt.date.fromisoformat(day),
                            params=params)
        # The replay loaded bars after each day (to measure outcomes) and still saw what the scan saw.
        assert sorted(by_day.get(day, [])) == sorted(hit_symbols(run)), day
    s = replay.summary
    assert s["sessions"] == 23 and s["first"] == "2021-03-01" and s["last"] == "2021-03-31"
    assert s["hits"] == len(replay.hits) == sum(n for _, n, _ in replay.daily)
    five = s["horizons"][0]
    assert five["sessions"] == 5 and five["pending"] == 0 and five["hits"]["n"] == s["hits"]
    # 24 names with data on each of the 23 sessions: 552 member-days, all measured 5 sessions on.
    assert five["universe"]["n"] == 24 * 23


def test_a_replay_request_is_checked_first(universe):
    universe("TEST", {"A": rising(5)})
    bad = [({"start": dt.date(2023, 2, 1), "end": dt.date(2023, 1, 1)}, "start", "start 2023-02-01 is after end"),
           ({"start": dt.date(2023, 1, 1), "end": dt.date(2023, 2, 1), "horizons": [0]}, "horizons",
            "horizons must be between 1 and 252 sessions")]
    for kwargs, field, message in bad:
        with pytest.raises(services.ScanError, match=message) as error:
            services.start_replay(screen="high_52w", universe="TEST", **kwargs)
        assert error.value.field == field


def test_saved_screens_of_the_migration_are_there():
    assert list(SavedScreen.objects.values_list("name", "screen", "universe", "daily")) == [
        ("momentum-asx", "momentum_breakout", "ASX300", True), ("momentum-us", "momentum_breakout", "SP500", True)]
    assert US_TICKERS[0] == "AAPL"


def test_a_saved_screen_is_replaced_only_by_its_creator_or_staff(universe, alice, bob, carol):
    universe("TEST", {"A": rising(30)})
    services.save_screen(name="alice-highs", screen="high_52w", universe="TEST", params={"window": 5}, user=alice)
    with pytest.raises(services.ScanError, match="name 'alice-highs' is taken by a saved screen you did not create"):
        services.save_screen(name="alice-highs", screen="high_52w", universe="TEST", params={"window": 9}, user=bob)
    # The desk's own screens (from the migrations, no creator) are staff's to change.
    with pytest.raises(services.ScanError, match="name 'momentum-us' is taken"):
        services.save_screen(name="momentum-us", screen="high_52w", universe="TEST", user=alice)
    assert services.save_screen(name="alice-highs", screen="high_52w", universe="TEST", params={"window": 7},
                                user=alice).params == {"window": 7}
    corrected = services.save_screen(name="alice-highs", screen="high_52w", universe="TEST", params={"window": 6},
                                     user=carol)
    assert (corrected.params, corrected.created_by) == ({"window": 6}, alice)  # still hers
