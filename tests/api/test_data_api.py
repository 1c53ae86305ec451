"""Market-data endpoints through HTTP: values, symbol resolution, errors, pagination and the schema."""
import copy
import datetime as dt

import jsonschema
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from ninja.testing import TestClient

from marketdata.api import router
from marketdata.models import Instrument, IngestRun, PriceBar
from quant.quality import NOT_A_SESSION

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture
def api(client, alice_read):
    """A script's client: every request carries alice's read-only token."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {alice_read}"
    return client


@pytest.fixture
def bhp_twice(make_bars):
    """BHP on the ASX (AUD) and its US listing on the NYSE (USD): two series, never one."""
    make_bars("BHP", "XASX", [(dt.date(2024, 3, 8), 44.50, 44.90, 44.20, 44.71, 7_000_000)], name="BHP Group")
    make_bars("BHP", "XNYS", [(dt.date(2024, 3, 8), 57.10, 57.60, 56.90, 57.33, 2_000_000)], name="BHP Group ADR")


def quarantine(instrument, day):
    PriceBar.objects.filter(instrument=instrument, date=day).update(flags=NOT_A_SESSION, quarantined=True)


# --- prices ---------------------------------------------------------------------------------

def test_it_returns_raw_prices_in_the_window(api, aapl):
    response = api.get(f"{API}/data/prices/AAPL?start=2024-03-05&end=2024-03-06")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("symbol", "exchange", "currency", "adjusted", "start", "end")} == {
        "symbol": "AAPL", "exchange": "XNAS", "currency": "USD", "adjusted": False,
        "start": "2024-03-05", "end": "2024-03-06",
    }
    assert body["bars"] == [
        {"date": "2024-03-05", "open": 170.76, "high": 172.04, "low": 169.62, "close": 170.12,
         "volume": 95_132_400, "adj_factor": 0.5, "flags": 0, "flag_labels": [], "quarantined": False},
        {"date": "2024-03-06", "open": 171.06, "high": 171.24, "low": 168.68, "close": 169.12,
         "volume": 68_587_700, "adj_factor": 0.5, "flags": 0, "flag_labels": [], "quarantined": False},
    ]


def test_adjusted_prices_multiply_ohlc_by_the_factor_and_keep_volume(api, aapl):
    body = api.get(f"{API}/data/prices/AAPL?start=2024-03-04&end=2024-03-04&adjusted=true").json()
    bar = body["bars"][0]
    assert body["adjusted"] is True
    # 176.15 x 0.5 = 88.075; 176.90 x 0.5 = 88.45; 173.79 x 0.5 = 86.895; 175.10 x 0.5 = 87.55
    assert bar["open"] == pytest.approx(88.075)
    assert bar["high"] == pytest.approx(88.45)
    assert bar["low"] == pytest.approx(86.895)
    assert bar["close"] == pytest.approx(87.55)
    assert bar["volume"] == 81_510_100


def test_without_dates_it_returns_the_whole_history_oldest_first(api, aapl):
    body = api.get(f"{API}/data/prices/AAPL").json()
    assert [b["date"] for b in body["bars"]] == ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]
    assert body["start"] is None and body["end"] is None


def test_it_leaves_quarantined_bars_out_unless_asked(api, aapl):
    quarantine(aapl, dt.date(2024, 3, 6))
    url = f"{API}/data/prices/AAPL?start=2024-03-05&end=2024-03-07"
    assert [b["date"] for b in api.get(url).json()["bars"]] == ["2024-03-05", "2024-03-07"]

    bars = api.get(url + "&include_quarantined=true").json()["bars"]
    assert [b["date"] for b in bars] == ["2024-03-05", "2024-03-06", "2024-03-07"]
    assert bars[1]["quarantined"] is True
    assert bars[1]["flags"] == NOT_A_SESSION
    assert bars[1]["flag_labels"] == ["date is not a session of the exchange"]


def test_a_missing_price_is_null_not_zero(api, make_bars):
    make_bars("ZZZ", "XNYS", [(dt.date(2024, 3, 8), None, 10.5, 9.5, 10.0, 100)])
    bar = api.get(f"{API}/data/prices/ZZZ?adjusted=true").json()["bars"][0]
    assert bar["open"] is None
    assert bar["close"] == 10.0


def test_a_non_finite_price_is_null_in_json(api, make_bars):
    # JSON has no Infinity; a value the database should never hold still must not break the response.
    make_bars("INF", "XNYS", [(dt.date(2024, 3, 8), 10.0, float("inf"), 9.5, 10.0, 100)])
    response = api.get(f"{API}/data/prices/INF")
    assert b"Infinity" not in response.content
    assert response.json()["bars"][0]["high"] is None


def test_prices_take_two_queries(aapl, django_assert_num_queries):
    # Handler only (no auth): resolve the symbol, then one values_list over the bars.
    with django_assert_num_queries(2):
        response = TestClient(router).get("/prices/AAPL?adjusted=true")
    assert len(response.json()["bars"]) == 5


# --- BR-15: symbols as users type them ------------------------------------------------------

@pytest.mark.parametrize("typed", ["bhp.ax", " BHP.AX ", "XASX:BHP", "xasx:bhp"])
def test_it_resolves_the_asx_listing(api, bhp_twice, typed):
    body = api.get(f"{API}/data/prices/{typed}").json()
    assert (body["symbol"], body["exchange"], body["currency"]) == ("BHP", "XASX", "AUD")
    assert body["bars"][0]["close"] == 44.71


def test_it_resolves_the_us_listing_by_exchange(api, bhp_twice):
    body = api.get(f"{API}/data/latest/XNYS:BHP").json()
    assert (body["exchange"], body["currency"], body["close"]) == ("XNYS", "USD", 57.33)


@pytest.mark.parametrize("endpoint", ["prices", "latest"])
def test_a_bare_symbol_on_two_exchanges_is_409_naming_both(api, bhp_twice, endpoint):
    response = api.get(f"{API}/data/{endpoint}/BHP")
    assert response.status_code == 409
    body = response.json()
    assert body["candidates"] == ["XASX:BHP", "XNYS:BHP"]
    assert "XASX:BHP" in body["detail"] and "XNYS:BHP" in body["detail"]


@pytest.mark.parametrize("typed, exchange", [("NYSE:BHP", "XNYS"), ("asx:bhp", "XASX"), ("XNYS:BHP", "XNYS")])
def test_br15_an_exchange_name_or_mic_prefix_picks_the_listing(api, bhp_twice, typed, exchange):
    assert api.get(f"{API}/data/latest/{typed}").json()["exchange"] == exchange


@pytest.mark.parametrize("typed", ["BRK-B", "brk-b", "BRK.B", "XNYS:BRK-B"])
def test_br15_a_share_class_resolves_in_any_providers_spelling(api, make_bars, typed):
    make_bars("BRK.B", "XNYS", [(dt.date(2024, 3, 8), 410.0, 412.0, 408.0, 411.5, 3_000_000)])
    body = api.get(f"{API}/data/latest/{typed}").json()
    assert (body["symbol"], body["close"]) == ("BRK.B", 411.5)


def test_br15_a_suffix_that_contradicts_the_exchange_is_404_saying_so(api, bhp_twice):
    response = api.get(f"{API}/data/latest/XNYS:BHP.AX")
    assert response.status_code == 404
    assert response.json() == {"detail": "'XNYS:BHP.AX' is a XASX symbol, but the exchange given is XNYS"}


def test_lowercase_padded_unique_symbol_resolves(api, aapl):
    assert api.get(f"{API}/data/prices/%20aapl%20").json()["symbol"] == "AAPL"


# --- errors -----------------------------------------------------------------------------------

def test_an_unknown_symbol_is_404_naming_it(api, aapl):
    response = api.get(f"{API}/data/prices/XYZ")
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown symbol 'XYZ'"}


def test_an_unknown_symbol_on_an_exchange_names_both(api, aapl):
    assert api.get(f"{API}/data/latest/XASX:AAPL").json() == {"detail": "unknown symbol 'AAPL' on XASX"}


def test_start_after_end_is_422_naming_start(api, aapl):
    response = api.get(f"{API}/data/prices/AAPL?start=2024-03-08&end=2024-03-04")
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", "start"]
    assert problem["msg"] == "start 2024-03-08 is after end 2024-03-04"


@pytest.mark.parametrize("param", ["start", "end"])
def test_a_bad_date_is_422_naming_the_parameter(api, aapl, param):
    response = api.get(f"{API}/data/prices/AAPL?{param}=2024-13-01")
    assert response.status_code == 422
    assert [p["loc"] for p in response.json()["detail"]] == [["query", param]]


def test_a_bad_boolean_is_422_naming_it(api, aapl):
    response = api.get(f"{API}/data/prices/AAPL?adjusted=maybe")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "adjusted"]


# --- latest -----------------------------------------------------------------------------------

def test_br10_weekly_bars_are_first_max_min_last_and_summed(api, aapl):
    # Mon 03-04 .. Thu 03-07 only (a partial week): open 176.15 (Mon), high 176.90 (Mon), low 168.49 (Thu),
    # close 169.00 (Thu), volume 81,510,100 + 95,132,400 + 68,587,700 + 71,765,100 = 316,995,300.
    body = api.get(f"{API}/data/prices/AAPL?end=2024-03-07&interval=weekly").json()
    assert body["interval"] == "weekly"
    [week] = body["bars"]
    assert (week["date"], week["open"], week["high"], week["low"], week["close"], week["volume"]) == (
        "2024-03-07", 176.15, 176.90, 168.49, 169.00, 316_995_300)
    adjusted = api.get(f"{API}/data/prices/AAPL?end=2024-03-07&interval=weekly&adjusted=true").json()["bars"][0]
    assert adjusted["close"] == pytest.approx(84.5)  # 169.00 x 0.5
    assert api.get(f"{API}/data/prices/AAPL?interval=monthly").status_code == 422


def test_latest_gives_the_last_bar_and_the_change(api, aapl):
    body = api.get(f"{API}/data/latest/AAPL").json()
    assert body["date"] == "2024-03-08"
    assert body["close"] == 170.73
    assert body["previous_date"] == "2024-03-07"
    assert body["previous_close"] == pytest.approx(169.00)  # same factor on both days: 169.00 x 0.5 / 0.5
    assert body["change"] == pytest.approx(1.73)  # 170.73 - 169.00
    assert body["change_pct"] == pytest.approx(1.023669, abs=1e-6)  # 1.73 / 169.00 x 100


def test_latest_skips_quarantined_bars(api, aapl):
    quarantine(aapl, dt.date(2024, 3, 8))
    body = api.get(f"{API}/data/latest/AAPL").json()
    assert (body["date"], body["close"], body["previous_date"]) == ("2024-03-07", 169.00, "2024-03-06")
    assert body["change"] == pytest.approx(-0.12)  # 169.00 - 169.12
    assert body["change_pct"] == pytest.approx(-0.070955, abs=1e-6)  # -0.12 / 169.12 x 100


def test_latest_does_not_report_a_split_as_a_crash(api, make_bars):
    # 2:1 split effective 03-08: the day before closed at 200 raw, factor 0.5 -> 100 on today's basis.
    make_bars("SPL", "XNYS", [(dt.date(2024, 3, 7), 199, 201, 198, 200.0, 1000)], adj_factor=0.5)
    make_bars("SPL", "XNYS", [(dt.date(2024, 3, 8), 100, 102, 99, 101.0, 2000)], adj_factor=1.0)
    body = api.get(f"{API}/data/latest/SPL").json()
    assert body["previous_close"] == pytest.approx(100.0)
    assert body["change"] == pytest.approx(1.0)  # 101 - 100, not 101 - 200
    assert body["change_pct"] == pytest.approx(1.0)  # +1%, not -49.5%


def test_latest_restates_across_a_dividend_without_float_noise(api, make_bars):
    # Factors of a dividend-adjusted series differ by a hair: 441.40 x (0.9731003 / 0.9731003000000001)
    # is 441.39999999999995 in floats; the answer is the price to 10 significant digits.
    make_bars("DIV", "XNAS", [(dt.date(2024, 3, 7), 441, 442, 440, 441.40, 1000)], adj_factor=0.9731003)
    make_bars("DIV", "XNAS", [(dt.date(2024, 3, 8), 430, 431, 429, 430.47, 1000)], adj_factor=0.9731003000000001)
    body = api.get(f"{API}/data/latest/DIV").json()
    assert (body["previous_close"], body["change"]) == (441.4, -10.93)  # 430.47 - 441.40


def test_latest_with_a_single_bar_has_no_change(api, bhp_twice):
    body = api.get(f"{API}/data/latest/bhp.ax").json()
    assert body["close"] == 44.71
    assert body["previous_close"] is None and body["change"] is None and body["change_pct"] is None


def test_latest_without_bars_is_404_naming_the_instrument(api):
    Instrument.objects.create(symbol="MSFT", exchange="XNAS", currency="USD")
    response = api.get(f"{API}/data/latest/msft")
    assert response.status_code == 404
    assert response.json() == {"detail": "no usable bars for XNAS:MSFT"}


# --- instruments and BR-26 pagination ---------------------------------------------------------

@pytest.fixture
def twenty_five(db):
    Instrument.objects.bulk_create(
        Instrument(symbol=f"S{i:02d}", exchange="XNYS", currency="USD", name=f"Stock {i}") for i in range(1, 26)
    )


def _symbols(response):
    return [item["symbol"] for item in response.json()["items"]]


def test_page_two_of_twenty_five_holds_rows_eleven_to_twenty(api, twenty_five):
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"{API}/data/instruments?page=2&page_size=10")
    assert response.json()["count"] == 25
    assert _symbols(response) == [f"S{i:02d}" for i in range(11, 21)]
    # The rows came from the database ten at a time, not all 25 sliced in Python.
    page_sql = [q["sql"] for q in queries.captured_queries if 'FROM "marketdata_instrument"' in q["sql"]
                and "COUNT(" not in q["sql"]]
    assert len(page_sql) == 1
    assert "LIMIT 10 OFFSET 10" in page_sql[0]


def test_page_three_holds_the_last_five_and_page_four_is_empty(api, twenty_five):
    assert _symbols(api.get(f"{API}/data/instruments?page=3&page_size=10")) == [f"S{i:02d}" for i in range(21, 26)]
    response = api.get(f"{API}/data/instruments?page=4&page_size=10")
    assert response.status_code == 200
    assert response.json() == {"items": [], "count": 25}


@pytest.mark.parametrize("page", ["0", "-1", "two"])
def test_a_page_below_one_is_422_naming_page(api, twenty_five, page):
    response = api.get(f"{API}/data/instruments?page={page}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "page"]


def test_the_default_page_size_is_fifty_and_page_size_is_capped_at_500(api, twenty_five):
    with CaptureQueriesContext(connection) as queries:
        assert len(_symbols(api.get(f"{API}/data/instruments"))) == 25
    assert any("LIMIT 50" in q["sql"] for q in queries.captured_queries)
    with CaptureQueriesContext(connection) as queries:
        api.get(f"{API}/data/instruments?page_size=100000")
    assert any("LIMIT 500" in q["sql"] for q in queries.captured_queries)


def test_no_page_holds_more_than_the_page_size(api, twenty_five):
    for page in range(1, 5):
        assert len(_symbols(api.get(f"{API}/data/instruments?page={page}&page_size=7"))) <= 7


def test_instrument_filters(api, aapl, bhp_twice, make_bars):
    make_bars("VAS", "XASX", [], name="Vanguard Australian Shares", asset_type="etf")
    Instrument.objects.filter(symbol="BHP", exchange="XNYS").update(active=False)
    get = lambda query: [i["key"] for i in api.get(f"{API}/data/instruments?{query}").json()["items"]]  # noqa: E731
    assert get("") == ["XNAS:AAPL", "XASX:BHP", "XNYS:BHP", "XASX:VAS"]
    assert get("q=%20apple%20") == ["XNAS:AAPL"]  # name contains, any case, padding ignored
    assert get("q=bh") == ["XASX:BHP", "XNYS:BHP"]  # symbol contains
    assert get("exchange=xasx") == ["XASX:BHP", "XASX:VAS"]
    assert get("asset_type=etf") == ["XASX:VAS"]
    assert get("active=false") == ["XNYS:BHP"]
    assert get("exchange=XASX&active=true&q=b") == ["XASX:BHP"]


def test_an_unknown_exchange_filter_is_422_naming_it(api):
    response = api.get(f"{API}/data/instruments?exchange=LSE")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "exchange"]


def test_an_instrument_row_has_its_fields(api, aapl):
    [item] = api.get(f"{API}/data/instruments").json()["items"]
    assert item == {
        "key": "XNAS:AAPL", "symbol": "AAPL", "exchange": "XNAS", "currency": "USD", "name": "Apple Inc.",
        "sector": "Information Technology", "asset_type": "equity", "active": True,
        "listed_on": None, "delisted_on": None,
    }


# --- ingest runs ------------------------------------------------------------------------------

def test_runs_are_listed_newest_first_with_their_duration(api, alice):
    old = IngestRun.objects.create(provider="csv", status="success", rows_read=10, rows_inserted=10)
    new = IngestRun.objects.create(provider="sample", status="partial", errors=["RMG: no data in range"],
                                   requested_by=alice)
    start = dt.datetime(2024, 3, 8, 7, 0, tzinfo=dt.timezone.utc)
    IngestRun.objects.filter(pk=old.pk).update(started_at=start - dt.timedelta(days=1))
    IngestRun.objects.filter(pk=new.pk).update(started_at=start, finished_at=start + dt.timedelta(seconds=90))
    body = api.get(f"{API}/data/runs").json()
    assert body["count"] == 2
    assert [r["id"] for r in body["items"]] == [new.pk, old.pk]
    latest = body["items"][0]
    assert latest["duration_seconds"] == 90.0
    assert latest["requested_by"] == "alice"
    assert latest["errors"] == ["RMG: no data in range"]
    assert body["items"][1]["duration_seconds"] is None and body["items"][1]["requested_by"] is None


def test_a_run_by_id(api):
    run = IngestRun.objects.create(provider="csv", params={"path": "bars.csv"}, rows_read=3)
    body = api.get(f"{API}/data/runs/{run.pk}").json()
    assert (body["provider"], body["params"], body["rows_read"]) == ("csv", {"path": "bars.csv"}, 3)
    assert body["status"] == "running"


def test_a_missing_run_is_404(api):
    response = api.get(f"{API}/data/runs/999")
    assert response.status_code == 404
    assert response.json() == {"detail": "no ingest run with id 999"}


def test_a_non_numeric_run_id_is_422_naming_it(api):
    response = api.get(f"{API}/data/runs/abc")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "run_id"]


# --- the published schema (BR-22) -------------------------------------------------------------

def test_the_openapi_schema_builds_with_every_path(admin_client_):
    response = admin_client_.get(f"{API}/openapi.json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert {f"{API}/data/instruments", f"{API}/data/prices/{{symbol}}", f"{API}/data/latest/{{symbol}}",
            f"{API}/data/runs", f"{API}/data/runs/{{run_id}}"} <= paths


def test_the_docs_are_for_staff(client, alice, carol):
    assert client.get(f"{API}/docs").status_code == 302
    client.force_login(alice)
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(carol)
    assert client.get(f"{API}/docs").status_code == 200


def _response_schema(spec, path):
    ref = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return {**ref, "components": spec["components"]}


def test_a_real_price_response_validates_against_the_published_schema(api, admin_client_, make_bars):
    make_bars("AAPL", "XNAS", [(dt.date(2024, 3, 8), 169.00, 173.70, 168.94, 187.44, 76_114_600)])
    spec = admin_client_.get(f"{API}/openapi.json").json()
    schema = _response_schema(spec, f"{API}/data/prices/{{symbol}}")
    assert spec["components"]["schemas"]["BarOut"]["properties"]["close"]["anyOf"][0] == {"type": "number"}

    body = api.get(f"{API}/data/prices/AAPL?start=2024-03-08&end=2024-03-08").json()
    jsonschema.validate(body, schema)
    assert body["bars"][0]["close"] == 187.44  # a JSON number, as the schema says

    # The check has teeth: the string form of the same price breaks the published contract.
    as_string = copy.deepcopy(body)
    as_string["bars"][0]["close"] = "187.4400"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(as_string, schema)


def test_latest_instruments_and_runs_validate_against_the_published_schema(api, admin_client_, aapl):
    IngestRun.objects.create(provider="csv")
    spec = admin_client_.get(f"{API}/openapi.json").json()
    for path in ("latest/AAPL", "instruments", "runs"):
        template = {"latest/AAPL": "latest/{symbol}"}.get(path, path)
        jsonschema.validate(api.get(f"{API}/data/{path}").json(), _response_schema(spec, f"{API}/data/{template}"))
