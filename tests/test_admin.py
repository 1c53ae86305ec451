"""The admin as carol uses it: every page opens, tokens are shown once, bars can be corrected."""
import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import reverse

from marketdata.models import BarCorrection, CorporateAction, IndexMembership, IngestRun, Instrument, PriceBar
from parakeet.models import Alert, ApiToken, hash_token
from quant.quality import NOT_A_SESSION, OHLC_INCONSISTENT
from scanner.models import SavedScreen, ScanHit, ScanReplay, ScanRun
from strategies.models import BacktestRun, BacktestSweep, SweepResult
from trades.models import CashMovement, Portfolio, PortfolioSnapshot, Trade, TradeExit, TradeImport, TradeVersion

pytestmark = pytest.mark.django_db

OUR_APPS = {"marketdata", "trades", "strategies", "scanner", "parakeet"}
OUR_MODELS = [m for m in admin.site._registry if m._meta.app_label in OUR_APPS]
# Written by jobs (runs, hits, snapshots) or the journal (trades keep their TradeVersion history).
NO_ADD_PAGE = {IngestRun, Trade, TradeVersion, TradeExit, PortfolioSnapshot, BacktestRun, BacktestSweep, ScanRun,
               ScanHit, BarCorrection, ScanReplay, Alert, TradeImport}
RAW_TOKEN = re.compile(r"pk_[A-Za-z0-9_-]{43}")


@pytest.fixture
def one_of_everything(aapl, alice):
    """One row of every model, so changelists and change pages render real values."""
    when = dt.datetime(2024, 3, 8, 21, 0, tzinfo=dt.timezone.utc)
    CorporateAction.objects.create(instrument=aapl, kind="split", ex_date=dt.date(2020, 8, 31), ratio=4, source="test")
    IndexMembership.objects.create(index_code="SP500", instrument=aapl, start=dt.date(1982, 11, 30))
    IngestRun.objects.create(provider="sample", status="success", rows_read=5, requested_by=alice)
    BarCorrection.objects.create(bar=aapl.bars.first(), instrument=aapl, date=dt.date(2024, 3, 4), action="accept",
                                 old_values={"close": 175.10}, new_values={"close": 175.10}, reason="checked")
    book = Portfolio.objects.create(name="Desk", owner=alice, inception_date=dt.date(2024, 3, 4), benchmark=aapl)
    CashMovement.objects.create(portfolio=book, date=dt.date(2024, 3, 4), kind="deposit", amount=Decimal("10000"))
    TradeImport.objects.create(portfolio=book, sha256="0" * 64, name="fills.csv", rows=1, imported_by=alice)
    fields = dict(symbol="AAPL", instrument=aapl, quantity=Decimal("10"), entry_price=Decimal("175.10"),
                  entry_date=dt.date(2024, 3, 4), event_time=when)
    trade = Trade.objects.create(trade_id="T-1", portfolio=book, knowledge_time=when, **fields)
    version = TradeVersion.objects.create(trade=trade, version=1, knowledge_time=when, changed_by=alice, **fields)
    TradeExit.objects.create(version=version, date=dt.date(2024, 3, 8), quantity=Decimal("4"), price=Decimal("170.73"))
    PortfolioSnapshot.objects.create(portfolio=book, date=dt.date(2024, 3, 4), total_value=Decimal("10000"),
                                     cash=Decimal("8249"), invested=Decimal("1751"))
    BacktestRun.objects.create(strategy="momentum", start=dt.date(2020, 1, 1), end=dt.date(2023, 12, 29))
    sweep = BacktestSweep.objects.create(strategy="momentum", universe="SP500", start=dt.date(2020, 1, 1),
                                         end=dt.date(2023, 12, 29), combinations=1, chunks=1)
    SweepResult.objects.create(sweep=sweep, index=0, chunk=0, params={"top_n": 20}, metrics={"sharpe": 0.8})
    run = ScanRun.objects.create(screen="momentum", universe="SP500", as_of=dt.date(2024, 3, 8))
    ScanHit.objects.create(run=run, instrument=aapl, rank=1, score=0.42, metrics={"ret_12m": 0.42})
    ScanReplay.objects.create(screen="high_52w", universe="SP500", start=dt.date(2023, 1, 2), end=dt.date(2023, 12, 29),
                              saved_screen=SavedScreen.objects.first())
    ApiToken.objects.create(user=alice, name="notebook", key_hash=hash_token("pk_x"), prefix="pk_x")
    Alert.objects.create(key="stale:XNAS:2024-03-08", subject="Nasdaq data is 3 sessions behind", sent_to=["email"])


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_model_of_ours_is_registered():
    names = {m.__name__ for m in OUR_MODELS}
    assert names == {"Instrument", "PriceBar", "BarCorrection", "CorporateAction", "IndexMembership", "IngestRun",
                     "Portfolio", "CashMovement", "Trade", "TradeVersion", "TradeExit", "PortfolioSnapshot", "TradeImport", "BacktestRun",
                     "BacktestSweep", "ScanRun", "ScanHit", "ApiToken", "SavedScreen", "ScanReplay", "Alert"}


@pytest.mark.parametrize("model", OUR_MODELS, ids=lambda m: m.__name__)
def test_changelist_change_and_add_pages_open(admin_client_, one_of_everything, model):
    assert admin_client_.get(_url(model, "changelist")).status_code == 200
    assert admin_client_.get(_url(model, "change", model.objects.first().pk)).status_code == 200
    # Records written by jobs and the journal's history have no add page (403), by design: see below.
    expected = 403 if model in NO_ADD_PAGE else 200
    assert admin_client_.get(_url(model, "add")).status_code == expected


def test_a_trader_cannot_open_the_admin(alice_client):
    response = alice_client.get(_url(Instrument, "changelist"))
    assert response.status_code == 302


def test_instrument_search_matches_symbol_and_name(admin_client_, aapl, make_bars):
    make_bars("BHP", "XASX", [], name="BHP Group")
    page = admin_client_.get(_url(Instrument, "changelist") + "?q=apple").content.decode()
    assert "Apple Inc." in page and "BHP Group" not in page
    page = admin_client_.get(_url(Instrument, "changelist") + "?q=bhp").content.decode()
    assert "BHP Group" in page and "Apple Inc." not in page


def test_the_instrument_page_shows_its_corporate_actions_inline(admin_client_, aapl):
    CorporateAction.objects.create(instrument=aapl, kind="split", ex_date=dt.date(2020, 8, 31), ratio=4, source="t")
    page = admin_client_.get(_url(Instrument, "change", aapl.pk)).content.decode()
    assert "2020-08-31" in page or "31/08/2020" in page
    assert f"?instrument__id__exact={aapl.pk}" in page  # link to its bars


def test_the_pricebar_changelist_query_count_does_not_grow_with_rows(admin_client_, aapl, make_bars,
                                                                    django_assert_max_num_queries):
    # 5 bars of AAPL; add 60 more bars on 12 other instruments: the query count must stay flat (no N+1).
    with django_assert_max_num_queries(8) as captured:
        admin_client_.get(_url(PriceBar, "changelist"))
    small = len(captured)
    for n in range(12):
        make_bars(f"X{n:02d}", "XNYS", [(dt.date(2024, 3, d), 1, 2, 0.5, 1.5, 10) for d in range(4, 9)])
    with django_assert_max_num_queries(small) as captured:
        response = admin_client_.get(_url(PriceBar, "changelist"))
    assert response.status_code == 200
    # show_full_result_count=False: no second COUNT(*) of the unfiltered table.
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"] and "marketdata_pricebar" in q["sql"]]
    assert len(counts) <= 1


def test_the_pricebar_changelist_filters_by_flag_reason(admin_client_, aapl):
    PriceBar.objects.filter(instrument=aapl, date=dt.date(2024, 3, 6)).update(flags=NOT_A_SESSION | OHLC_INCONSISTENT)
    PriceBar.objects.filter(instrument=aapl, date=dt.date(2024, 3, 7)).update(flags=OHLC_INCONSISTENT)
    changelist = admin_client_.get(_url(PriceBar, "changelist") + f"?flag={NOT_A_SESSION}").context["cl"]
    assert [bar.date for bar in changelist.result_list] == [dt.date(2024, 3, 6)]
    changelist = admin_client_.get(_url(PriceBar, "changelist") + "?flag=any").context["cl"]
    assert [bar.date for bar in changelist.result_list] == [dt.date(2024, 3, 7), dt.date(2024, 3, 6)]


def test_a_bar_can_be_corrected_in_the_admin(admin_client_, aapl):
    bar = PriceBar.objects.get(instrument=aapl, date=dt.date(2024, 3, 6))
    response = admin_client_.post(_url(PriceBar, "change", bar.pk), {
        "source": "manual", "open": "171.06", "high": "171.24", "low": "168.68", "close": "169.20",
        "volume": "68587700", "adj_factor": "0.5", "reasons": [str(OHLC_INCONSISTENT), str(NOT_A_SESSION)],
        "quarantined": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    bar.refresh_from_db()
    assert (bar.close, bar.source, bar.quarantined) == (169.20, "manual", True)
    assert bar.flags == OHLC_INCONSISTENT | NOT_A_SESSION  # 2 | 4 = 6
    assert (bar.instrument_id, bar.date) == (aapl.pk, dt.date(2024, 3, 6))  # identity is read-only


def test_the_quarantine_action_and_its_release(admin_client_, aapl):
    ids = list(PriceBar.objects.filter(instrument=aapl).order_by("date").values_list("pk", flat=True)[:2])
    url = _url(PriceBar, "changelist")
    admin_client_.post(url, {"action": "quarantine_bars", "_selected_action": ids})
    assert PriceBar.objects.filter(quarantined=True).count() == 2
    admin_client_.post(url, {"action": "release_bars", "_selected_action": ids[:1]})
    assert list(PriceBar.objects.filter(quarantined=True).values_list("pk", flat=True)) == ids[1:]


def test_issuing_a_token_shows_the_secret_once_and_stores_only_its_hash(admin_client_, alice, client):
    response = admin_client_.post(_url(ApiToken, "add"), {"user": alice.pk, "name": "research notebook",
                                                          "scope": "read"}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    [raw] = set(RAW_TOKEN.findall(page))
    token = ApiToken.objects.get(name="research notebook")
    assert token.key_hash == hash_token(raw)
    assert token.prefix == raw[:10]
    stored = " ".join(str(getattr(token, f.attname)) for f in ApiToken._meta.concrete_fields)
    assert raw not in stored

    # Never again: not on the change page, not in the list.
    assert raw not in admin_client_.get(_url(ApiToken, "change", token.pk)).content.decode()
    assert raw not in admin_client_.get(_url(ApiToken, "changelist")).content.decode()
    assert token.key_hash[:12] in admin_client_.get(_url(ApiToken, "change", token.pk)).content.decode()

    # And the secret works as a bearer token.
    api = client.get("/api/v1/data/instruments", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.status_code == 200


def test_editing_a_token_does_not_change_its_secret(admin_client_, alice, alice_read):
    token = ApiToken.objects.get(key_hash=hash_token(alice_read))
    response = admin_client_.post(_url(ApiToken, "change", token.pk), {"name": "renamed", "scope": "read"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert (token.name, token.key_hash) == ("renamed", hash_token(alice_read))


def test_revoking_selected_tokens_locks_their_clients_out(admin_client_, alice_read, alice_write, client):
    token = ApiToken.objects.get(key_hash=hash_token(alice_read))
    admin_client_.post(_url(ApiToken, "changelist"), {"action": "revoke_tokens", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiToken.objects.get(key_hash=hash_token(alice_write)).revoked_at is None
    assert client.get("/api/v1/data/instruments", HTTP_AUTHORIZATION=f"Bearer {alice_read}").status_code == 401


def test_on_postgresql_the_unfiltered_bar_list_uses_the_row_estimate_not_count(admin_client_, aapl):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("the planner's estimate is PostgreSQL's; SQLite counts (small tables)")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE marketdata_pricebar")
    with CaptureQueriesContext(connection) as captured:
        response = admin_client_.get(_url(PriceBar, "changelist"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 5
    assert not [q for q in captured.captured_queries if "COUNT(" in q["sql"] and "marketdata_pricebar" in q["sql"]]
    # A filtered list still counts exactly.
    with CaptureQueriesContext(connection) as captured:
        admin_client_.get(_url(PriceBar, "changelist") + "?quarantined__exact=1")
    assert [q for q in captured.captured_queries if "COUNT(" in q["sql"] and "marketdata_pricebar" in q["sql"]]
