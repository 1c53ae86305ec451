"""Universes and the symbol master: point-in-time membership, code changes, delistings and BR-13."""
import datetime as dt
import io
from functools import lru_cache

import pandas as pd
import pytest
import time_machine
from django.core.management import CommandError, call_command

from marketdata import calendars
from marketdata.errors import IngestError
from marketdata.models import IndexMembership, Instrument, IngestRun, SymbolChange
from marketdata.symbols import history_start, import_symbols, rename_chain, renamed_from, renamed_on
from marketdata.universes import UnknownUniverse, import_memberships, member_intervals, members
from quant.universe import membership_mask
from tests.conftest import MARKETDATA

pytestmark = pytest.mark.django_db

API = "/api/v1"
SP500_INTERVALS = MARKETDATA / "us" / "sp500_membership_intervals.csv"
SP500_CHANGES = MARKETDATA / "us" / "sp500_changes_since_2019.csv"
ASX300 = MARKETDATA / "asx" / "asx_top300_universe.csv"
ASX_PRICES = MARKETDATA / "asx" / "asx_daily_top300_2010_2024.parquet"
ASX_CHANGES = MARKETDATA / "asx" / "asx_name_changes_2001_2020.csv.gz"
ASX_DELISTED = MARKETDATA / "asx" / "asx_delisted_2000_2020.csv.gz"


@pytest.fixture
def sp500(db):
    return import_memberships(code="SP500", path=SP500_INTERVALS)


@pytest.fixture
def api(client, alice_read):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {alice_read}"
    return client


@pytest.fixture
def write_csv(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def symbols_on(code, day):
    return set(members(code, day).values_list("symbol", flat=True))


@lru_cache(maxsize=1)
def asx_prices():
    """The real bars of the few ASX codes these tests use, read once."""
    frame = pd.read_parquet(ASX_PRICES, filters=[("ticker", "in", ["AXA", "SPK", "TEL", "WDS"])])
    frame["ticker"] = frame["ticker"].astype(str)
    return frame


def asx_bars(make_bars, symbol, start, end):
    """Real ASX bars of `symbol` between two dates from the top-300 price file, stored with make_bars."""
    frame = asx_prices()
    frame = frame[(frame["ticker"] == symbol) & (frame["date"] >= start) & (frame["date"] <= end)]
    rows = [(d, o, h, lo, c, v) for d, o, h, lo, c, v in
            frame[["date", "open", "high", "low", "close", "volume"]].itertuples(index=False)]
    return make_bars(symbol, "XASX", rows)


# --- S&P 500 membership from the real intervals file -------------------------------------------

def test_a_name_that_left_is_a_member_before_its_end_date_and_not_on_it(sp500):
    # ETSY 2020-09-21..2024-09-23: the end is the change date, the first day out.
    assert "ETSY" in symbols_on("SP500", dt.date(2024, 9, 20))
    assert "ETSY" not in symbols_on("SP500", dt.date(2024, 9, 23))
    assert "ETSY" not in symbols_on("SP500", dt.date(2020, 9, 18))


def test_aal_is_a_member_in_each_of_its_two_intervals_and_not_between(sp500):
    # AAL: 1996-01-02..1997-01-15 and 2015-03-23..2024-09-23.
    assert "AAL" in symbols_on("SP500", dt.date(1996, 6, 3))
    assert "AAL" not in symbols_on("SP500", dt.date(1997, 1, 15))
    assert "AAL" not in symbols_on("SP500", dt.date(2010, 6, 1))
    assert "AAL" in symbols_on("SP500", dt.date(2015, 3, 23))
    assert "AAL" in symbols_on("SP500", dt.date(2024, 9, 20))
    assert "AAL" not in symbols_on("SP500", dt.date(2024, 9, 23))
    assert IndexMembership.objects.filter(index_code="SP500", instrument__symbol="AAL").count() == 2


def test_a_name_added_later_is_not_a_member_before(sp500):
    # PLTR joined on 2024-09-23 with DELL and ERIE, replacing AAL, BIO and ETSY.
    assert "PLTR" not in symbols_on("SP500", dt.date(2024, 9, 20))
    assert "PLTR" in symbols_on("SP500", dt.date(2024, 9, 23))


def test_the_index_keeps_503_names_across_a_three_for_three_change(sp500):
    # 3 out and 3 in on 2024-09-23: exclusive ends keep the count (inclusive ones would give 506).
    assert members("SP500", dt.date(2024, 9, 20)).count() == 503
    assert members("SP500", dt.date(2024, 9, 23)).count() == 503


def test_a_bankrupt_name_without_bars_is_an_active_nyse_instrument_and_a_past_member(sp500):
    enron = Instrument.objects.get(symbol="ENRNQ")
    assert (enron.exchange, enron.currency, enron.active, enron.delisted_on) == ("XNYS", "USD", True, None)
    assert "ENRNQ" in symbols_on("SP500", dt.date(2001, 6, 1))
    assert "ENRNQ" not in symbols_on("SP500", dt.date(2001, 11, 30))


def test_a_symbol_already_listed_on_another_us_venue_keeps_that_instrument(aapl):
    import_memberships(code="SP500", path=SP500_INTERVALS)

    assert list(Instrument.objects.filter(symbol="AAPL").values_list("exchange", flat=True)) == ["XNAS"]
    assert members("SP500", dt.date(2020, 1, 2)).filter(pk=aapl.pk).exists()


def test_reimporting_the_same_file_changes_nothing(sp500):
    before = list(IndexMembership.objects.order_by("pk").values_list("pk", "instrument_id", "start", "end"))

    again = import_memberships(code="SP500", path=SP500_INTERVALS)

    # 1,230 intervals for 1,181 tickers, every one already stored.
    assert (sp500.rows_inserted, sp500.symbols) == (1230, 1181)
    assert (again.kind, again.status, again.rows_read) == ("membership", "success", 1230)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged, again.result.removed) == (0, 0, 1230, 0)
    assert list(IndexMembership.objects.order_by("pk").values_list("pk", "instrument_id", "start", "end")) == before


def test_the_changes_file_closes_and_opens_intervals_after_the_last_change(sp500):
    run = import_memberships(code="SP500", path=SP500_INTERVALS, changes=SP500_CHANGES)

    # After 2025-07-09: 10 additions (TTD, XYZ, PSKY, IBKR, APP, HOOD, EME, SOLS, Q, FISV), 10 removals.
    assert (run.rows_inserted, run.rows_updated) == (10, 10)
    assert "TTD" not in symbols_on("SP500", dt.date(2025, 7, 17))
    assert "TTD" in symbols_on("SP500", dt.date(2025, 7, 18))
    assert "ANSS" in symbols_on("SP500", dt.date(2025, 7, 17))
    assert "ANSS" not in symbols_on("SP500", dt.date(2025, 7, 18))
    # Fiserv traded as FI from 2023-06-07 and as FISV again from 2025-11-11: as traded, each a member.
    assert {"FI"} <= symbols_on("SP500", dt.date(2025, 11, 10)) - symbols_on("SP500", dt.date(2025, 11, 11))
    assert "FISV" in symbols_on("SP500", dt.date(2025, 11, 11))

    # Without the changes file again: back to the intervals file alone.
    back = import_memberships(code="SP500", path=SP500_INTERVALS)
    assert (back.rows_updated, back.result.removed) == (10, 10)
    assert "TTD" not in symbols_on("SP500", dt.date(2025, 7, 18))


def test_member_intervals_is_one_row_per_interval_with_exclusive_ends(sp500):
    frame = member_intervals("SP500")

    assert list(frame.columns) == ["instrument_id", "symbol", "exchange", "start", "end"]
    assert len(frame) == 1230
    assert str(frame["start"].dtype) == "datetime64[s]" and str(frame["end"].dtype) == "datetime64[s]"
    aal = frame[frame["symbol"] == "AAL"]
    assert aal[["start", "end"]].astype(str).values.tolist() == [["1996-01-02", "1997-01-15"],
                                                                 ["2015-03-23", "2024-09-23"]]
    # 503 intervals are still open.
    assert int(frame["end"].isna().sum()) == 503


def test_the_interval_mask_agrees_with_members_on_each_date(sp500):
    days = pd.DatetimeIndex(["1996-06-03", "2001-06-01", "2024-09-20", "2024-09-23"])

    mask = membership_mask(member_intervals("SP500"), days)

    assert mask.sum(axis=1).tolist() == [members("SP500", d.date()).count() for d in days]
    enron = Instrument.objects.get(symbol="ENRNQ").pk
    assert mask[enron].tolist() == [True, True, False, False]


def test_an_unknown_universe_names_the_known_ones(sp500):
    with pytest.raises(UnknownUniverse, match=r"^unknown universe 'FTSE' \(known: SP500\)$"):
        members("FTSE", dt.date(2024, 1, 2))


# --- errors: nothing written, the run kept as failed -----------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("ticker,start_date,end_date\nAAA,2001-01-02,\nBBB,02/01/2001,\n",
     """^m.csv: row 3, column "start_date": '02/01/2001' is not a date \\(expected YYYY-MM-DD\\)$"""),
    ("ticker,start_date,end_date\nAAA,2001-01-02,2001-01-02\n",
     """^m.csv: row 2, column "end_date": 2001-01-02 is not after the start 2001-01-02$"""),
    ("ticker,start_date,end_date\nAAA,2001-01-02,2005-01-03\nAAA,2004-06-01,\n",
     """^m.csv: row 3, column "start_date": AAA's interval from 2004-06-01 overlaps the one in row 2$"""),
    ("ticker,start_date\nAAA,2001-01-02\n",
     """^m.csv: missing column "end_date" \\(columns found: "ticker", "start_date"\\)$"""),
    ("ticker,start_date,end_date\n,2001-01-02,\n", """^m.csv: row 2, column "ticker": missing$"""),
])
def test_a_bad_membership_file_is_refused_naming_row_and_column(sp500, write_csv, text, message):
    path = write_csv("m.csv", text)
    stored = IndexMembership.objects.count()

    with pytest.raises(IngestError, match=message):
        import_memberships(code="SP500", path=path)

    assert IndexMembership.objects.count() == stored
    assert not Instrument.objects.filter(symbol__in=["AAA", "BBB"]).exists()
    failed = IngestRun.objects.order_by("-id").first()
    assert (failed.kind, failed.status) == ("membership", "failed")
    assert failed.errors[0].startswith("m.csv: ")


def test_a_removal_of_a_non_member_in_the_changes_file_names_its_row(sp500, write_csv):
    path = write_csv("changes.csv", 'date,add,remove\n2025-08-01,"",ZZZZ\n')

    with pytest.raises(IngestError, match=r'^changes.csv: row 2, column "remove": ZZZZ is removed on 2025-08-01'):
        import_memberships(code="SP500", path=SP500_INTERVALS, changes=path)


# --- the ASX top-300 selection -----------------------------------------------------------------

def test_the_asx_selection_spans_each_codes_traded_dates(db):
    run = import_memberships(code="ASX300", path=ASX300)

    assert (run.rows_inserted, run.symbols) == (300, 300)
    bhp = Instrument.objects.get(symbol="BHP", exchange="XASX")
    assert (bhp.currency, bhp.name, bhp.sector) == ("AUD", "BHP GROUP LIMITED", "Materials")
    assert Instrument.objects.get(symbol="CBA", exchange="XASX").sector == "Banks"  # the GICS industry group
    # WPL last traded 2022-05-24 (Woodside then took WDS): stored end 2022-05-25, exclusive.
    wpl = IndexMembership.objects.get(index_code="ASX300", instrument__symbol="WPL")
    assert (wpl.start, wpl.end) == (dt.date(2010, 1, 4), dt.date(2022, 5, 25))
    assert "WPL" in symbols_on("ASX300", dt.date(2022, 5, 24))
    assert "WPL" not in symbols_on("ASX300", dt.date(2022, 5, 25))
    # SYD first traded 2011-12-21, when MAP Group became Sydney Airport.
    assert "SYD" not in symbols_on("ASX300", dt.date(2011, 12, 20))
    # 216 codes traded on the file's last day, 2024-05-31: left open.
    assert IndexMembership.objects.filter(index_code="ASX300", end__isnull=True).count() == 216
    assert members("ASX300", dt.date(2026, 1, 5)).count() == 216


def test_a_constituents_list_gives_the_sp500_names_and_sectors(aapl):
    aapl.sector = ""
    aapl.save()
    import_memberships(code="SP500", path=SP500_INTERVALS, details=MARKETDATA / "us" / "sp500_constituents_current.csv")
    # AAPL keeps its Nasdaq listing and its name, and gains its GICS sector; a new instrument gets both.
    apple = Instrument.objects.get(symbol="AAPL")
    assert (apple.exchange, apple.name, apple.sector) == ("XNAS", "Apple Inc.", "Information Technology")
    mmm = Instrument.objects.get(symbol="MMM")
    assert (mmm.name, mmm.sector) == ("3M", "Industrials")


# --- the command -------------------------------------------------------------------------------

def test_import_universe_reports_what_it_did_and_a_no_change_rerun(db):
    out = io.StringIO()
    call_command("import_universe", "--code", "sp500", "--path", str(SP500_INTERVALS), stdout=out)
    call_command("import_universe", "--code", "SP500", "--path", str(SP500_INTERVALS), stdout=out)

    first, again = out.getvalue().splitlines()
    assert first.startswith("SP500: 1,230 intervals for 1,181 instruments (1,181 created): 1,230 inserted, 0 updated")
    assert again.startswith("SP500: 1,230 intervals for 1,181 instruments (0 created): 0 inserted, 0 updated, "
                            "0 removed, 1,230 unchanged")


def test_import_universe_turns_a_bad_file_into_a_command_error(write_csv):
    path = write_csv("m.csv", "ticker,start_date,end_date\nAAA,2001-13-02,\n")

    with pytest.raises(CommandError, match=r'^m.csv: row 2, column "start_date"'):
        call_command("import_universe", "--code", "SP500", "--path", str(path), stdout=io.StringIO())


# --- GET /data/universes/{code} ----------------------------------------------------------------

def test_the_api_lists_the_members_on_a_date(api, sp500):
    body = api.get(f"{API}/data/universes/SP500?as_of=2024-09-20").json()

    assert (body["code"], body["as_of"], body["count"]) == ("SP500", "2024-09-20", 503)
    assert len(body["members"]) == 503
    assert {"key": "XNYS:AAL", "symbol": "AAL", "exchange": "XNYS", "name": "", "active": True} in body["members"]
    later = api.get(f"{API}/data/universes/sp500?as_of=2024-09-23").json()
    symbols = {m["symbol"] for m in later["members"]}
    assert "AAL" not in symbols and "PLTR" in symbols


def test_the_api_defaults_to_today(api, sp500):
    with time_machine.travel(dt.datetime(2024, 9, 20, 12, tzinfo=dt.UTC), tick=False):
        body = api.get(f"{API}/data/universes/SP500").json()

    assert (body["as_of"], body["count"]) == ("2024-09-20", 503)


def test_the_api_answers_404_listing_the_known_universes(api, sp500):
    response = api.get(f"{API}/data/universes/FTSE100")

    assert response.status_code == 404
    assert response.json() == {"detail": "unknown universe 'FTSE100' (known: SP500)"}


def test_the_api_answers_422_naming_as_of(api, sp500):
    response = api.get(f"{API}/data/universes/SP500?as_of=20-09-2024")

    assert response.status_code == 422
    assert [problem["loc"] for problem in response.json()["detail"]] == [["query", "as_of"]]


def test_the_api_needs_credentials(client, sp500):
    assert client.get(f"{API}/data/universes/SP500").status_code == 401


# --- the symbol master: ASX code changes and delistings ----------------------------------------

def test_it_imports_only_code_changes_and_a_rerun_changes_nothing(db):
    run = import_symbols(changes=ASX_CHANGES)
    again = import_symbols(changes=ASX_CHANGES)

    # 2,604 rows, of which 1,742 change the code (the rest change only the name).
    assert (run.kind, run.status, run.rows_read, run.rows_inserted) == ("symbols", "success", 1742, 1742)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 1742)
    assert SymbolChange.objects.count() == 1742
    assert not SymbolChange.objects.filter(old_symbol="HBN", new_symbol="HBN").exists()
    tel = SymbolChange.objects.get(old_symbol="TEL", new_symbol="SPK")
    assert (tel.exchange, tel.date, tel.new_name, tel.source) == (
        "XASX", dt.date(2014, 8, 8), "Spark New Zealand Limited", "asx")


def test_a_delisting_marks_an_instrument_whose_bars_ended_before_it(make_bars):
    # AXA Asia Pacific last traded 2011-03-08 and was delisted on 2011-03-31.
    axa = asx_bars(make_bars, "AXA", dt.date(2011, 3, 1), dt.date(2011, 3, 31))

    run = import_symbols(delisted=ASX_DELISTED)

    axa.refresh_from_db()
    assert (axa.active, axa.delisted_on) == (False, dt.date(2011, 3, 31))
    assert run.result.delisted == 1


def test_a_delisting_before_the_codes_reuse_does_not_deactivate_the_newer_company(make_bars):
    # WDS Limited last traded 2015-08-25 and was delisted on 2016-08-30; Woodside took WDS on 2022-05-25.
    wds = asx_bars(make_bars, "WDS", dt.date(2015, 8, 1), dt.date(2015, 8, 31))
    import_symbols(delisted=ASX_DELISTED)
    wds.refresh_from_db()
    assert (wds.active, wds.delisted_on) == (False, dt.date(2016, 8, 30))  # all we hold is the old company

    asx_bars(make_bars, "WDS", dt.date(2022, 5, 25), dt.date(2022, 5, 31))
    run = import_symbols(delisted=ASX_DELISTED)

    wds.refresh_from_db()
    assert (wds.active, wds.delisted_on) == (True, None)
    assert (run.result.delisted, run.result.reactivated) == (0, 1)


def test_of_two_delistings_of_a_code_the_one_after_the_last_bar_counts(make_bars):
    # AFY: Affinity Health delisted 2005-06-08, Afterpay Holdings 2017-07-11.
    affinity = make_bars("AFY", "XASX", [(dt.date(2005, 5, 2), 1.0, 1.0, 1.0, 1.0, 100)])

    import_symbols(delisted=ASX_DELISTED)

    affinity.refresh_from_db()
    assert affinity.delisted_on == dt.date(2005, 6, 8)


def test_a_delisting_is_not_applied_without_bars_or_across_a_code_change(make_bars, tmp_path):
    # Without bars nothing says which company the code meant.
    bare = make_bars("AXA", "XASX", [])
    # TEL became SPK on 2014-08-08: a later TEL delisting (added below) is another listing's.
    tel = make_bars("TEL", "XASX", [(dt.date(2014, 8, 7), 2.59, 2.63, 2.585, 2.62, 1_195_411)])
    SymbolChange.objects.create(exchange="XASX", old_symbol="TEL", new_symbol="SPK", date=dt.date(2014, 8, 8),
                                source="test")
    # An ASX delisting says nothing about a US listing with the same code.
    us = make_bars("AXA", "XNYS", [(dt.date(2010, 1, 4), 1.0, 1.0, 1.0, 1.0, 100)])
    later = pd.DataFrame([{"file_year": "2019", "company_name": "LATER TEL LIMITED", "code": "TEL",
                           "date_delisted": "2019-01-02", "reason": "test row"}])
    path = tmp_path / "delisted.csv.gz"
    pd.concat([pd.read_csv(ASX_DELISTED, dtype=str, keep_default_na=False), later]).to_csv(
        path, index=False, compression="gzip")

    run = import_symbols(delisted=path)

    for instrument in (bare, tel, us):
        instrument.refresh_from_db()
        assert (instrument.active, instrument.delisted_on) == (True, None)
    assert Instrument.objects.filter(exchange="XASX").count() == 2  # the file creates no instruments
    assert (run.result.delisted, run.result.not_applied) == (0, 2)


def test_import_symbols_refuses_a_bad_date_naming_row_and_column(write_csv):
    path = write_csv("changes.csv", "effective_date,old_code,old_name,new_code,new_name\n"
                                    "2014-08-08,TEL,Telecom,SPK,Spark\n2014-8-8,AAA,A,BBB,B\n")

    message = r"""^changes.csv: row 3, column "effective_date": '2014-8-8' is not a date"""
    with pytest.raises(CommandError, match=message):
        call_command("import_symbols", "--changes", str(path), stdout=io.StringIO())

    assert not SymbolChange.objects.exists()
    assert IngestRun.objects.get().status == "failed"


def test_import_symbols_reports_both_files(db):
    out = io.StringIO()
    call_command("import_symbols", "--changes", str(ASX_CHANGES), "--delisted", str(ASX_DELISTED), stdout=out)

    # 1,803 delisting rows, 24 of them exact repeats.
    assert out.getvalue().startswith("symbols: 1,742 code changes: 1,742 inserted, 0 updated, 0 removed, 0 unchanged; "
                                     "1,779 delistings: 0 instruments marked delisted")


# --- BR-13: QQQQ became QQQ on 2011-03-23 ------------------------------------------------------

@pytest.fixture
def qqq(make_bars):
    """QQQQ's bars 2011-03-15..22 and QQQ's 2011-03-23..31 (closes 56.0 + day/100), QQQ factor 0.9."""
    sessions = [d.date() for d in calendars.sessions("XNYS")
                if dt.date(2011, 3, 15) <= d.date() <= dt.date(2011, 3, 31)]
    row = lambda d: (d, 56.0, 57.0, 55.0, 56.0 + d.day / 100, 1_000_000)  # noqa: E731
    make_bars("QQQQ", "XNAS", [row(d) for d in sessions if d < dt.date(2011, 3, 23)])
    new = make_bars("QQQ", "XNAS", [row(d) for d in sessions if d >= dt.date(2011, 3, 23)], adj_factor=0.9)
    SymbolChange.objects.create(exchange="XNAS", old_symbol="QQQQ", new_symbol="QQQ", date=dt.date(2011, 3, 23),
                                source="test")
    new.sessions = sessions
    return new


def test_br13_prices_under_the_new_code_say_it_was_renamed(api, qqq):
    body = api.get(f"{API}/data/prices/QQQ?start=2011-03-15&end=2011-03-31").json()

    # Only QQQ's own 7 sessions (23, 24, 25, 28, 29, 30, 31), flagged as coming from QQQQ.
    assert [b["date"] for b in body["bars"]][:1] == ["2011-03-23"] and len(body["bars"]) == 7
    assert body["renamed_from"] == [{"symbol": "QQQQ", "date": "2011-03-23"}]
    assert body["stitched"] is False


def test_br13_stitched_prices_are_13_consecutive_sessions(api, qqq):
    body = api.get(f"{API}/data/prices/QQQ?start=2011-03-15&end=2011-03-31&stitch=true&adjusted=true").json()

    assert len(qqq.sessions) == 13
    assert [b["date"] for b in body["bars"]] == [d.isoformat() for d in qqq.sessions]
    assert body["stitched"] is True
    # QQQQ 2011-03-22: raw 56.22 carried onto QQQ's basis, x 0.9 = 50.598; QQQ 2011-03-23: 56.23 x 0.9 = 50.607.
    by_date = {b["date"]: b for b in body["bars"]}
    assert by_date["2011-03-22"]["close"] == pytest.approx(50.598)
    assert by_date["2011-03-22"]["adj_factor"] == pytest.approx(0.9)
    assert by_date["2011-03-23"]["close"] == pytest.approx(50.607)


def test_br13_the_scanner_sees_where_the_history_under_the_code_starts(qqq):
    assert renamed_on(qqq) == dt.date(2011, 3, 23)
    assert history_start(qqq) == dt.date(2011, 3, 23)
    assert history_start(qqq, stitched=True) == dt.date(2011, 3, 15)
    # A 12-month return as of 2011-04-01 needs history from 2010-04-01: not there, stitched or not.
    assert history_start(qqq, stitched=True) > dt.date(2010, 4, 1)


def test_br13_a_code_given_up_and_reused_is_not_the_renamed_listing(make_bars):
    # AAA became BBB in 2005, BBB became CCC in 2010, and a new listing took BBB in 2015.
    for old, new, year in (("AAA", "BBB", 2005), ("BBB", "CCC", 2010)):
        SymbolChange.objects.create(exchange="XASX", old_symbol=old, new_symbol=new, date=dt.date(year, 3, 1),
                                    source="test")
    reused = make_bars("BBB", "XASX", [(dt.date(2015, 3, 2), 1.0, 1.0, 1.0, 1.0, 100)])
    renamed = make_bars("CCC", "XASX", [(dt.date(2010, 3, 1), 1.0, 1.0, 1.0, 1.0, 100)])

    assert rename_chain(reused) == [] and renamed_on(reused) is None
    assert renamed_from(renamed) == [{"symbol": "BBB", "date": dt.date(2010, 3, 1)},
                                     {"symbol": "AAA", "date": dt.date(2005, 3, 1)}]


def test_br13_a_real_asx_rename_stitches_tel_onto_spk(api, make_bars):
    # Telecom Corporation of New Zealand (TEL) traded as Spark New Zealand (SPK) from 2014-08-08.
    asx_bars(make_bars, "TEL", dt.date(2014, 8, 1), dt.date(2014, 8, 7))
    spk = asx_bars(make_bars, "SPK", dt.date(2014, 8, 8), dt.date(2014, 8, 14))
    import_symbols(changes=ASX_CHANGES)

    plain = api.get(f"{API}/data/prices/SPK.AX?start=2014-08-01&end=2014-08-14").json()
    stitched = api.get(f"{API}/data/prices/SPK.AX?start=2014-08-01&end=2014-08-14&stitch=true").json()

    assert plain["renamed_from"] == [{"symbol": "TEL", "date": "2014-08-08"}]
    assert [b["date"] for b in plain["bars"]] == ["2014-08-08", "2014-08-11", "2014-08-12", "2014-08-13", "2014-08-14"]
    # Ten XASX sessions 2014-08-01..14; the last TEL close was 2.62, the first SPK close 2.56.
    expected = [d.date().isoformat() for d in calendars.sessions("XASX")
                if dt.date(2014, 8, 1) <= d.date() <= dt.date(2014, 8, 14)]
    assert [b["date"] for b in stitched["bars"]] == expected and len(expected) == 10
    assert [b["close"] for b in stitched["bars"]][4:6] == [2.62, 2.56]
    assert (renamed_on(spk), history_start(spk), history_start(spk, stitched=True)) == (
        dt.date(2014, 8, 8), dt.date(2014, 8, 8), dt.date(2014, 8, 1))
