"""Reviewing flagged bars: accept, fix and drop through the data-health page, their history, and ingests
that respect them; the series checks with stored history; the real ASX file's defects on the page.

Personas: carol (admin, staff) reviews; alice (trader, not staff) may look but not change.
"""
import datetime as dt
import re

import pandas as pd
import pytest
from django.db.models import F
from django.test import Client

from marketdata.models import BarCorrection, IngestRun, Instrument, PriceBar
from marketdata.review import ReviewError, accept_bar, drop_bar, fix_bar
from marketdata.services import ingest_bars
from quant.quality import FLIP, JUMP, NOT_A_SESSION, STALE, SYMBOL_REUSED, ZERO_PRICE
from tests.conftest import MARKETDATA

pytestmark = pytest.mark.django_db

ASX = MARKETDATA / "asx" / "asx_daily_top300_2010_2024.parquet"


def text(response):
    return response.content.decode()


def write_csv(path, rows):
    """rows: (symbol, date, open, high, low, close, volume) on XASX."""
    pd.DataFrame(rows, columns=["symbol", "date", "open", "high", "low", "close", "volume"]).to_csv(path, index=False)
    return path


# GMA on the ASX, March 2018, as in the source: a Saturday bar on 2018-03-17.
GMA = [
    ("GMA", "2018-03-15", 2.40, 2.43, 2.38, 2.41, 300_000),
    ("GMA", "2018-03-16", 2.40, 2.42, 2.37, 2.40, 410_000),
    ("GMA", "2018-03-17", 2.41, 2.42, 2.37, 2.395, 385_796),
    ("GMA", "2018-03-19", 2.39, 2.41, 2.36, 2.38, 350_000),
]


@pytest.fixture
def gma_file(tmp_path):
    return write_csv(tmp_path / "gma.csv", GMA)


@pytest.fixture
def gma(gma_file):
    ingest_bars(provider="csv", path=gma_file, exchange="XASX")
    return Instrument.objects.get(symbol="GMA")


def saturday(instrument):
    return instrument.bars.get(date=dt.date(2018, 3, 17))


# --- the service -----------------------------------------------------------------------------------

def test_accept_keeps_the_values_clears_quarantine_and_records_who_and_when(gma, carol):
    bar = saturday(gma)
    assert bar.flags == NOT_A_SESSION and bar.quarantined

    correction = accept_bar(bar, user=carol, reason="GMA really traded that Saturday")

    bar.refresh_from_db()
    assert bar.reviewed and not bar.quarantined and bar.close == 2.395 and bar.flags == NOT_A_SESSION
    assert correction.action == "accept" and correction.changed_by == carol and correction.changed_at
    assert correction.old_values["quarantined"] is True and correction.new_values["quarantined"] is False
    assert correction.old_values["close"] == correction.new_values["close"] == 2.395


def test_fix_keeps_the_old_values_in_its_correction(gma, carol):
    bar = gma.bars.get(date=dt.date(2018, 3, 19))

    fix_bar(bar, user=carol, reason="close from the announcement", close=2.39, volume=351_000)

    bar.refresh_from_db()
    assert (bar.close, bar.volume, bar.reviewed) == (2.39, 351_000, True)
    correction = bar.corrections.get()
    assert (correction.old_values["close"], correction.new_values["close"]) == (2.38, 2.39)
    assert (correction.old_values["volume"], correction.new_values["volume"]) == (350_000, 351_000)


@pytest.mark.parametrize("values, field", [
    ({"close": 0}, "close"),             # not a price
    ({"close": "abc"}, "close"),         # not a number
    ({"low": 2.50}, "low"),              # low 2.50 above high 2.41
    ({"volume": 1.5}, "volume"),         # not whole shares
    ({"flags": 0}, "flags"),             # not a fixable field
    ({}, "values"),                      # nothing to fix
    ({"close": 2.38}, "values"),         # the stored value: accept instead
])
def test_fix_refuses_bad_values_naming_the_field_and_changes_nothing(gma, carol, values, field):
    bar = gma.bars.get(date=dt.date(2018, 3, 19))
    with pytest.raises(ReviewError) as caught:
        fix_bar(bar, user=carol, reason="typo", **values)
    assert caught.value.field == field
    bar.refresh_from_db()
    assert bar.close == 2.38 and not bar.reviewed and not BarCorrection.objects.exists()


def test_drop_deletes_the_bar_but_its_history_survives(gma, carol):
    bar = saturday(gma)
    accept_bar(bar, user=carol, reason="first look")

    correction = drop_bar(bar, user=carol, reason="not a trading day after all")

    assert not PriceBar.objects.filter(instrument=gma, date=dt.date(2018, 3, 17)).exists()
    history = list(BarCorrection.objects.filter(instrument=gma, date=dt.date(2018, 3, 17)).order_by("id"))
    assert [c.action for c in history] == ["accept", "drop"]
    assert all(c.bar_id is None for c in history)  # the link is NULL, the rows stay
    assert correction.old_values["close"] == 2.395 and correction.new_values == {}
    with pytest.raises(ReviewError):
        drop_bar(bar, user=carol, reason="again")  # already gone


# --- ingests respect reviews ---------------------------------------------------------------------

def test_re_ingest_keeps_a_fix_and_counts_it_unchanged(gma, gma_file, carol):
    fix_bar(gma.bars.get(date=dt.date(2018, 3, 19)), user=carol, reason="checked", close=2.39)

    run = ingest_bars(provider="csv", path=gma_file, exchange="XASX")

    assert gma.bars.get(date=dt.date(2018, 3, 19)).close == 2.39
    assert (run.rows_inserted, run.rows_updated, run.rows_unchanged) == (0, 0, 4)


def test_re_ingest_does_not_bring_back_a_dropped_bar(gma, gma_file, carol):
    drop_bar(saturday(gma), user=carol, reason="not a session")

    run = ingest_bars(provider="csv", path=gma_file, exchange="XASX")

    assert not gma.bars.filter(date=dt.date(2018, 3, 17)).exists()
    assert (run.rows_inserted, run.rows_updated, run.rows_unchanged) == (0, 0, 4)  # 3 the same + 1 dropped
    assert run.params["quality"]["dropped_skipped"] == 1


def test_a_run_records_flagged_quarantined_duplicates_and_missing_sessions(tmp_path):
    # 2018-03-16 twice (the last wins), a Saturday, and no bar on the sessions 03-20 and 03-21.
    path = write_csv(tmp_path / "gma.csv", GMA + [("GMA", "2018-03-16", 2.40, 2.42, 2.37, 2.40, 411_000),
                                                 ("GMA", "2018-03-22", 2.38, 2.40, 2.36, 2.37, 10)])
    run = ingest_bars(provider="csv", path=path, exchange="XASX")
    quality = run.params["quality"]
    assert (run.rows_read, run.rows_flagged, run.rows_quarantined) == (6, 1, 1)
    assert quality["duplicates"] == 1
    assert quality["missing_sessions"] == 2 and quality["instruments_with_gaps"] == 1
    assert quality["worst_gaps"] == [{"symbol": "GMA", "exchange": "XASX", "start": "2018-03-20",
                                      "end": "2018-03-21", "sessions": 2}]


# --- series checks with the stored tail -----------------------------------------------------------

def test_a_one_day_ingest_sees_the_jump_from_yesterdays_stored_close(tmp_path):
    first = write_csv(tmp_path / "a.csv", [("GMG", "2012-04-16", 0.70, 0.71, 0.69, 0.70, 9),
                                           ("GMG", "2012-04-17", 0.70, 0.71, 0.68, 0.69, 9)])
    ingest_bars(provider="csv", path=first, exchange="XASX")
    # 0.69 -> 3.60 is x5.2: the consolidation, with no action stored to explain it.
    today = write_csv(tmp_path / "b.csv", [("GMG", "2012-04-19", 3.70, 3.74, 3.60, 3.60, 9)])
    run = ingest_bars(provider="csv", path=today, exchange="XASX")

    bar = PriceBar.objects.get(date=dt.date(2012, 4, 19))
    assert bar.flags == JUMP and not bar.quarantined  # suspicious, not wrong: flagged, still used
    assert run.rows_flagged == 1
    assert run.params["quality"]["missing_sessions"] == 1  # 2012-04-18 between the stored and the new bar


def test_a_stored_split_explains_the_jump(tmp_path):
    from marketdata.models import CorporateAction

    first = write_csv(tmp_path / "a.csv", [("GMG", "2012-04-17", 0.70, 0.71, 0.68, 0.69, 9)])
    ingest_bars(provider="csv", path=first, exchange="XASX")
    gmg = Instrument.objects.get(symbol="GMG")
    CorporateAction.objects.create(instrument=gmg, kind="split", ex_date=dt.date(2012, 4, 18), ratio=0.2,
                                   source="test")
    today = write_csv(tmp_path / "b.csv", [("GMG", "2012-04-18", 3.70, 3.74, 3.45, 3.45, 9)])
    ingest_bars(provider="csv", path=today, exchange="XASX")
    assert gmg.bars.get(date=dt.date(2012, 4, 18)).flags == 0


def test_a_flip_undone_today_restates_the_stored_excursion(tmp_path):
    # XAM 2012-05: 25.00 (cents), then 0.23 and 0.23 (dollars) stored, then back to 20.00 today.
    stored = write_csv(tmp_path / "a.csv", [("XAM", "2012-05-10", 25, 25, 25, 25.0, 49_000),
                                            ("XAM", "2012-05-11", 25, 25, 25, 25.0, 10),
                                            ("XAM", "2012-05-14", 0.23, 0.23, 0.23, 0.23, 10_000),
                                            ("XAM", "2012-05-15", 0.23, 0.23, 0.23, 0.23, 25_000)])
    ingest_bars(provider="csv", path=stored, exchange="XASX")
    assert PriceBar.objects.get(date=dt.date(2012, 5, 14)).flags == JUMP  # all we knew then

    today = write_csv(tmp_path / "b.csv", [("XAM", "2012-05-16", 20, 20, 20, 20.0, 93_150)])
    run = ingest_bars(provider="csv", path=today, exchange="XASX")

    flags = dict(PriceBar.objects.values_list("date", "flags"))
    assert flags[dt.date(2012, 5, 14)] == FLIP and flags[dt.date(2012, 5, 15)] == FLIP
    assert flags[dt.date(2012, 5, 16)] == 0  # the move back is not a jump
    assert PriceBar.objects.get(date=dt.date(2012, 5, 14)).quarantined
    assert run.params["quality"]["stored_bars_restated"] == 2


# --- the page: staff review, traders look ----------------------------------------------------------

def test_carol_accepts_through_the_page(admin_client_, gma, carol):
    bar = saturday(gma)
    page = text(admin_client_.get(f"/data/bars/{bar.pk}/"))
    assert 'name="csrfmiddlewaretoken"' in page and 'value="accept"' in page and 'value="drop"' in page

    response = admin_client_.post(f"/data/bars/{bar.pk}/", {"action": "accept", "reason": "it traded"})

    assert response.status_code == 302 and response["Location"] == f"/data/bars/{bar.pk}/"
    bar.refresh_from_db()
    assert bar.reviewed and not bar.quarantined
    history = text(admin_client_.get(f"/data/bars/{bar.pk}/"))
    assert "Accepted as is" in history and "carol" in history and "it traded" in history


def test_carol_fixes_through_the_page_and_a_re_ingest_keeps_the_fix(admin_client_, gma, gma_file):
    bar = gma.bars.get(date=dt.date(2018, 3, 19))
    response = admin_client_.post(f"/data/bars/{bar.pk}/", {"action": "fix", "reason": "from the announcement",
                                                            "close": "2.39", "open": "", "high": "", "low": "",
                                                            "volume": ""})
    assert response.status_code == 302

    ingest_bars(provider="csv", path=gma_file, exchange="XASX")

    bar.refresh_from_db()
    assert bar.close == 2.39 and bar.open == 2.39  # close fixed; open as received (2.39 in the file)
    page = text(admin_client_.get(f"/data/bars/{bar.pk}/"))
    assert "Fixed by hand" in page and "close 2.38" in page and "close 2.39" in page


def test_a_refused_fix_shows_why_and_changes_nothing(admin_client_, gma):
    bar = gma.bars.get(date=dt.date(2018, 3, 19))
    response = admin_client_.post(f"/data/bars/{bar.pk}/", {"action": "fix", "reason": "typo", "low": "9"})
    assert response.status_code == 400
    assert "low: low 9 is above high 2.41" in text(response)
    bar.refresh_from_db()
    assert bar.low == 2.36 and not BarCorrection.objects.exists()


def test_carol_drops_through_the_page_and_the_history_stays_on_the_data_page(admin_client_, gma):
    bar = saturday(gma)
    response = admin_client_.post(f"/data/bars/{bar.pk}/", {"action": "drop", "reason": "Saturday"})
    assert response.status_code == 302 and response["Location"] == "/data/"
    assert admin_client_.get(f"/data/bars/{bar.pk}/").status_code == 404
    body = text(admin_client_.get("/data/"))
    corrections = body[body.index("<h2>Recent corrections"):]
    assert "XASX:GMA 2018-03-17" in corrections and "Dropped" in corrections and "close 2.395" in corrections


def test_alice_may_look_but_not_review(alice_client, gma):
    bar = saturday(gma)
    page = text(alice_client.get(f"/data/bars/{bar.pk}/"))
    assert "date is not a session of the exchange" in page and 'value="accept"' not in page
    for action in ("accept", "fix", "drop"):
        response = alice_client.post(f"/data/bars/{bar.pk}/", {"action": action, "reason": "mine", "close": "1"})
        assert response.status_code == 403
    bar.refresh_from_db()
    assert bar.quarantined and not bar.reviewed and not BarCorrection.objects.exists()


def test_a_review_without_the_csrf_token_is_refused(gma, carol):
    client = Client(enforce_csrf_checks=True)
    client.force_login(carol)
    response = client.post(f"/data/bars/{saturday(gma).pk}/", {"action": "accept", "reason": "x"})
    assert response.status_code == 403
    assert not BarCorrection.objects.exists()


def test_the_flagged_list_filters_by_reason_exchange_quarantine_and_status(alice_client, gma, carol, make_bars):
    make_bars("AAPL", "XNAS", [(dt.date(2024, 3, 4), 1, 1, 1, 1, 1)])
    PriceBar.objects.filter(instrument__symbol="AAPL").update(flags=ZERO_PRICE)

    def listed(query):
        body = text(alice_client.get(f"/data/?{query}"))
        section = body[body.index("<h2>Flagged bars"):body.index("<h2>Recent corrections")]
        return re.findall(r'<a href="/instruments/([A-Z:]+)/">', section)

    assert sorted(listed("")) == ["XASX:GMA", "XNAS:AAPL"]
    assert listed(f"reason={NOT_A_SESSION}") == ["XASX:GMA"]
    assert listed("exchange=XNAS") == ["XNAS:AAPL"]
    assert listed("quarantined=on") == ["XASX:GMA"]
    accept_bar(saturday(gma), user=carol, reason="ok")
    assert listed("") == ["XNAS:AAPL"]  # to review (the default)
    assert listed("status=reviewed") == ["XASX:GMA"]
    assert alice_client.get("/data/?reason=999").status_code == 400


def test_the_admin_accepts_selected_bars_with_a_record(admin_client_, gma, carol):
    bar = saturday(gma)
    response = admin_client_.post("/admin/marketdata/pricebar/", {"action": "accept_bars", "_selected_action": [bar.pk]})
    assert response.status_code == 302
    bar.refresh_from_db()
    assert bar.reviewed and not bar.quarantined
    assert BarCorrection.objects.get().changed_by == carol
    assert admin_client_.get("/admin/marketdata/barcorrection/add/").status_code == 403


# --- the real ASX file ----------------------------------------------------------------------------

ASX_SLICES = [
    (["XAM"], dt.date(2011, 1, 1), dt.date(2012, 12, 31)),   # flips x100 on and off, a stale run at 0.17
    (["WDS"], dt.date(2015, 8, 1), dt.date(2022, 6, 30)),    # Woodside takes the code on 2022-05-25
    (["GMG"], dt.date(2012, 4, 1), dt.date(2012, 5, 31)),    # the 2012-04-19 consolidation, no action in the file
    (["GMA", "HUB"], dt.date(2018, 3, 12), dt.date(2018, 3, 23)),  # the Saturday 2018-03-17 rows
]


@pytest.fixture
def asx_defects(db):
    for symbols, start, end in ASX_SLICES:
        ingest_bars(provider="parquet", path=ASX, exchange="XASX", symbols=symbols, start=start, end=end)


def flags_of(symbol, day):
    return PriceBar.objects.get(instrument__symbol=symbol, date=day).flags


def test_the_asx_file_surfaces_its_defects(asx_defects):
    assert flags_of("XAM", dt.date(2011, 5, 2)) & FLIP  # 56.00 -> 0.50 for May 2011, back to 45.00 on 06-01
    assert flags_of("XAM", dt.date(2011, 6, 1)) == 0
    xam = PriceBar.objects.filter(instrument__symbol="XAM")
    flipped = xam.alias(bit=F("flags").bitand(FLIP)).filter(bit__gt=0)
    assert flipped.count() == 69 and all(b.quarantined for b in flipped)
    assert xam.filter(date__gte=dt.date(2012, 10, 9), date__lte=dt.date(2012, 10, 16)).exclude(flags=0).count() == 6
    assert flags_of("XAM", dt.date(2012, 10, 9)) == STALE  # 0.17 again, no volume
    assert flags_of("WDS", dt.date(2022, 5, 25)) == SYMBOL_REUSED  # 0.105 -> 29.18 after 1,707 sessions
    assert PriceBar.objects.get(instrument__symbol="WDS", date=dt.date(2022, 5, 25)).quarantined
    assert flags_of("GMG", dt.date(2012, 4, 19)) == JUMP  # x5.2
    assert flags_of("GMA", dt.date(2018, 3, 17)) == NOT_A_SESSION
    assert flags_of("HUB", dt.date(2018, 3, 17)) == NOT_A_SESSION


def test_the_asx_defects_are_listed_on_the_data_page_with_reasons(alice_client, asx_defects):
    body = text(alice_client.get("/data/?status=all"))
    xasx = body[body.index("<h2>XASX"):body.index("<h2>Missing sessions")]
    for reason in ("flips back and forth", "symbol reused by another company", "jump no corporate action explains",
                   "stale: the same close repeated", "date is not a session of the exchange"):
        assert reason in xasx
    gaps = body[body.index("<h2>Missing sessions"):body.index("<h2>Flagged bars")]
    # WDS: nothing between 2015-08-25 and 2022-05-25, i.e. the sessions 2015-08-26 .. 2022-05-24.
    assert re.search(r"XASX:WDS</a></td>\s*<td class=\"num\">1,7\d\d</td>.*?2015-08-26 … 2022-05-24", gaps, re.S)
    reused = text(alice_client.get(f"/data/?reason={SYMBOL_REUSED}&exchange=XASX"))
    listed = reused[reused.index("<h2>Flagged bars"):reused.index("<h2>Recent corrections")]
    assert "XASX:WDS" in listed and "2022-05-25" in listed and "symbol reused by another company" in listed
