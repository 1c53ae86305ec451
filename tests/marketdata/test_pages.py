"""Market-data pages through the test client: login, content, search, symbols, chart data, query budgets."""
import datetime as dt
import json
import re
from urllib.parse import quote

import pytest
import time_machine

from marketdata.models import IngestRun, PriceBar
from quant.quality import MISSING_CLOSE, NOT_A_SESSION, OHLC_INCONSISTENT, ZERO_PRICE
from tests.marketdata.test_charts import decode

pytestmark = pytest.mark.django_db

PAGES = ["/", "/instruments/", "/instruments/AAPL/", "/data/", "/data/overview/"]
# The market-data overview (what loaded, how fresh, the ingest runs); "/" is the portfolio overview.
MARKET_OVERVIEW = "/data/overview/"
UTC = dt.timezone.utc


def chart(response):
    """The figure JSON embedded in a page, parsed."""
    match = re.search(r'<script type="application/json" id="price-chart">(.*?)</script>', response.content.decode(), re.S)
    assert match, "the page has no price chart"
    return json.loads(match.group(1))


def candle(response):
    return chart(response)["data"][0]


def text(response):
    return response.content.decode()


def flag(instrument, day, flags, quarantined=False):
    PriceBar.objects.filter(instrument=instrument, date=day).update(flags=flags, quarantined=quarantined)


def bar(day, close, volume=1_000):
    return (day, close, close + 1, close - 1, close, volume)


def many_instruments(make_bars, n, exchange="XNYS"):
    for i in range(n):
        make_bars(f"T{i:03d}", exchange, [bar(dt.date(2024, 3, 4), 10.0 + i), bar(dt.date(2024, 3, 5), 11.0 + i)],
                  name=f"Test company {i}")


# --- login -------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", PAGES + ["/instruments/XASX:BHP/"])
def test_anonymous_users_are_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={quote(url)}"


def test_the_login_page_renders_a_form_with_csrf(client):
    response = client.get("/accounts/login/?next=/data/")
    assert response.status_code == 200
    body = text(response)
    assert 'name="csrfmiddlewaretoken"' in body and 'name="username"' in body and 'name="password"' in body
    assert 'name="next" value="/data/"' in body


def test_alice_can_log_in_through_the_form_and_lands_on_next(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-Pass-1", "next": "/data/"})
    assert response.status_code == 302 and response["Location"] == "/data/"
    assert client.get("/data/").status_code == 200


def test_a_wrong_password_is_refused_with_a_message(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in text(response)


def test_logout_is_a_post_form_with_csrf(alice_client, aapl):
    body = text(alice_client.get("/"))
    form = re.search(r'<form class="logout" method="post" action="/accounts/logout/">(.*?)</form>', body, re.S)
    assert form and 'name="csrfmiddlewaretoken"' in form.group(1)
    assert alice_client.post("/accounts/logout/").status_code == 302
    assert alice_client.get("/").status_code == 302


def test_the_admin_link_is_for_staff_only(client, alice, carol):
    client.force_login(alice)
    assert 'href="/admin/"' not in text(client.get("/"))
    client.force_login(carol)
    assert 'href="/admin/"' in text(client.get("/"))


def test_the_nav_links_every_page_and_staff_see_the_api_docs(client, alice, carol):
    client.force_login(alice)
    body = text(client.get("/"))
    for href in ['href="/"', 'href="/trades/"', 'href="/instruments/"', 'href="/data/"', 'href="/strategies/"',
                 'href="/scanner/"']:
        assert href in body
    assert 'href="/api/v1/docs"' not in body  # the docs are staff-only
    client.force_login(carol)
    assert 'href="/api/v1/docs"' in text(client.get("/"))


def test_the_data_page_links_to_the_market_overview(alice_client):
    body = text(alice_client.get("/data/"))
    assert f'href="{MARKET_OVERVIEW}"' in body
    assert "Market data overview" in text(alice_client.get(MARKET_OVERVIEW))


# --- overview ----------------------------------------------------------------------------------

def test_the_overview_without_data_says_so_and_shows_the_command(alice_client):
    response = alice_client.get(MARKET_OVERVIEW)
    assert response.status_code == 200
    assert "No market data yet" in text(response)
    assert "<code>python manage.py ingest --provider sample</code>" in text(response)
    assert "No ingest has run yet." in text(response)


@time_machine.travel(dt.datetime(2024, 3, 11, 15, 0, tzinfo=UTC), tick=False)
def test_the_overview_shows_coverage_and_calls_friday_current_on_monday(alice_client, aapl, make_bars):
    make_bars("BHP", "XASX", [bar(dt.date(2024, 3, 8), 45.0)])
    flag(aapl, dt.date(2024, 3, 5), ZERO_PRICE)
    flag(aapl, dt.date(2024, 3, 6), NOT_A_SESSION, quarantined=True)
    response = alice_client.get(MARKET_OVERVIEW)
    assert response.status_code == 200
    body = text(response)
    assert "No market data yet" not in body
    # Monday 11 March 15:00 UTC: NYSE's last closed session is Fri 8 March, AAPL's last bar.
    xnas = re.search(r"<tr>\s*<td[^>]*><a[^>]*><strong>XNAS</strong>.*?</tr>", body, re.S).group(0)
    assert "2024-03-08" in xnas and "up to date" in xnas and "3 days ago" in xnas
    assert ">5</td>" in xnas  # 5 bars
    assert ">1</td>" in xnas  # 1 instrument, 1 flagged, 1 quarantined
    # ASX closed Monday 11 March at 05:00 UTC, so BHP's Friday bar is one session behind.
    xasx = re.search(r"<tr>\s*<td[^>]*><a[^>]*><strong>XASX</strong>.*?</tr>", body, re.S).group(0)
    assert "1 session behind" in xasx
    assert "Stale data" not in body
    assert "2024-03-04" in body  # first bar overall


@time_machine.travel(dt.datetime(2024, 3, 13, 22, 0, tzinfo=UTC), tick=False)
def test_the_overview_says_clearly_when_data_is_stale(alice_client, aapl):
    # Sessions closed after Fri 8 March by Wed 13 March 22:00 UTC: 11, 12 and 13 March = 3.
    body = text(alice_client.get(MARKET_OVERVIEW))
    assert "Stale data:" in body
    assert "Nasdaq ends 2024-03-08, 3 sessions behind" in body
    assert "stale: 3 sessions behind" in body


def test_the_overview_lists_ingest_runs_with_counts_duration_and_errors(alice_client, aapl):
    run = IngestRun.objects.create(provider="csv", status=IngestRun.Status.PARTIAL, symbols=2, rows_read=10,
                                   rows_inserted=7, rows_updated=1, rows_unchanged=0, rows_flagged=2,
                                   errors=['prices.csv: row 3, column "close": \'abc\' is not a number'])
    IngestRun.objects.filter(pk=run.pk).update(
        started_at=dt.datetime(2024, 3, 8, 21, 30, tzinfo=UTC), finished_at=dt.datetime(2024, 3, 8, 21, 30, 12, 500_000, tzinfo=UTC)
    )
    body = text(alice_client.get(MARKET_OVERVIEW))
    row = re.search(r"<tr>\s*<td class=\"muted\">%d</td>.*?</tr>" % run.pk, body, re.S).group(0)
    assert "csv" in row and "Partial success" in row
    assert "2024-03-08 21:30" in row and "12.5 s" in row  # 21:30:12.5 - 21:30:00
    assert "1 error" in row and "row 3, column &quot;close&quot;: &#x27;abc&#x27; is not a number" in row
    assert re.search(r">2</td>\s*<td class=\"num\">10</td>\s*<td class=\"num\">7</td>\s*<td class=\"num\">1</td>", row)


def test_the_overview_stays_within_its_query_budget(alice_client, make_bars, django_assert_max_num_queries):
    many_instruments(make_bars, 30)
    many_instruments(make_bars, 5, exchange="XASX")
    for i in range(12):
        IngestRun.objects.create(provider="sample", status="success", errors=[f"e{i}"])
    # session, user, instruments per exchange, coverage per exchange, ingest runs, stale banner (cached)
    with django_assert_max_num_queries(6):
        response = alice_client.get(MARKET_OVERVIEW)
    assert response.status_code == 200
    assert ">35</span>" in text(response)  # instruments card: 30 + 5


# --- instrument list ---------------------------------------------------------------------------

def test_the_instrument_list_shows_coverage_columns(alice_client, aapl):
    response = alice_client.get("/instruments/")
    assert response.status_code == 200
    row = re.search(r"<tr>\s*<td><a href=\"/instruments/XNAS:AAPL/\">.*?</tr>", text(response), re.S).group(0)
    for cell in ["AAPL", "XNAS", "Apple Inc.", "Equity", "USD", "2024-03-04", "2024-03-08", ">5</td>"]:
        assert cell in row


def test_search_matches_symbol_or_name(alice_client, aapl, make_bars):
    make_bars("MSFT", "XNAS", [bar(dt.date(2024, 3, 8), 400.0)], name="Microsoft Corporation")
    by_name = text(alice_client.get("/instruments/?q=apple"))
    assert "/instruments/XNAS:AAPL/" in by_name and "/instruments/XNAS:MSFT/" not in by_name
    by_symbol = text(alice_client.get("/instruments/?q=msf"))
    assert "/instruments/XNAS:MSFT/" in by_symbol and "/instruments/XNAS:AAPL/" not in by_symbol
    nothing = text(alice_client.get("/instruments/?q=zzzz"))
    assert "No instrument matches" in nothing


def test_the_exchange_filter_keeps_one_exchange(alice_client, aapl, make_bars):
    make_bars("BHP", "XASX", [bar(dt.date(2024, 3, 8), 45.0)], name="BHP Group")
    body = text(alice_client.get("/instruments/?exchange=XASX"))
    assert "/instruments/XASX:BHP/" in body and "/instruments/XNAS:AAPL/" not in body
    assert '<option value="XASX" selected>' in body


def test_it_rejects_an_unknown_exchange_naming_the_field(alice_client, aapl):
    response = alice_client.get("/instruments/?exchange=NOPE")
    assert response.status_code == 400
    assert "exchange: &#x27;NOPE&#x27; is not an exchange" in text(response)


def test_the_list_pages_fifty_at_a_time(alice_client, make_bars):
    many_instruments(make_bars, 60)
    first, second = text(alice_client.get("/instruments/")), text(alice_client.get("/instruments/?page=2"))
    # 60 instruments: page 1 holds T000..T049, page 2 holds T050..T059.
    assert first.count('href="/instruments/XNYS:T0') == 50 and "XNYS:T049/" in first and "XNYS:T050/" not in first
    assert second.count('href="/instruments/XNYS:T0') == 10 and "XNYS:T050/" in second and "XNYS:T059/" in second
    assert "Page 2 of 2" in second


def test_paging_keeps_the_search(alice_client, make_bars):
    many_instruments(make_bars, 60)
    body = text(alice_client.get("/instruments/?q=test&exchange=XNYS"))
    assert 'href="?q=test&amp;exchange=XNYS&amp;page=2"' in body


def test_the_instrument_list_stays_within_its_query_budget(alice_client, make_bars, django_assert_max_num_queries):
    many_instruments(make_bars, 30)
    # session, user, count, page ids, coverage of the page's instruments, stale banner (cached)
    with django_assert_max_num_queries(6):
        response = alice_client.get("/instruments/")
    assert text(response).count('href="/instruments/XNYS:T0') == 30


# --- instrument page ---------------------------------------------------------------------------

def test_the_instrument_page_shows_latest_bar_chart_and_heading(alice_client, aapl):
    response = alice_client.get("/instruments/AAPL/")
    assert response.status_code == 200
    body = text(response)
    assert "Apple Inc." in body
    assert "Raw prices, 2022-03-08 to 2024-03-08" in body  # default: two years back from the last bar
    # Latest close 170.73; change 170.73 - 169.00 = +1.73 = +1.02%; volume 76,114,600.
    assert "170.73" in body and "+1.73" in body and "+1.02%" in body and "76,114,600" in body
    assert '<div class="chart" data-plotly="price-chart"' in body
    assert "/static/vendor/plotly.min.js" in body and "/static/js/charts.js" in body
    assert candle(response)["x"] == ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]


def test_the_adjusted_toggle_changes_the_plotted_values(alice_client, aapl):
    raw = decode(candle(alice_client.get("/instruments/AAPL/"))["close"])
    adjusted_response = alice_client.get("/instruments/AAPL/?adjusted=1")
    adjusted = decode(candle(adjusted_response)["close"])
    assert raw.tolist() == [175.10, 170.12, 169.12, 169.00, 170.73]
    # adj_factor 0.5: 175.10 x 0.5 = 87.55 ... 170.73 x 0.5 = 85.365
    assert adjusted.tolist() == [87.55, 85.06, 84.56, 84.5, 85.365]
    assert "Adjusted prices, 2022-03-08 to 2024-03-08" in text(adjusted_response)
    # Latest adjusted close 85.365 shows as 85.37; the change keeps its percentage: 85.365 / 84.5 - 1 = +1.02%.
    assert "85.37" in text(adjusted_response) and "(+1.02%)" in text(adjusted_response)


def test_it_accepts_exchange_prefixed_and_yahoo_style_symbols(alice_client, make_bars):
    make_bars("BHP", "XASX", [bar(dt.date(2024, 3, 8), 45.0)], name="BHP Group")
    for url in ["/instruments/XASX:BHP/", "/instruments/BHP.AX/", "/instruments/bhp.ax/", "/instruments/BHP/"]:
        response = alice_client.get(url)
        assert response.status_code == 200, url
        assert "XASX:BHP" in text(response) and "AUD" in text(response)


def test_an_ambiguous_symbol_lists_every_listing(alice_client, make_bars):
    make_bars("BHP", "XASX", [bar(dt.date(2024, 3, 8), 45.0)], name="BHP Group")
    make_bars("BHP", "XNYS", [bar(dt.date(2024, 3, 8), 57.0)], name="BHP Group ADR")
    response = alice_client.get("/instruments/BHP/")
    assert response.status_code == 200
    body = text(response)
    assert "BHP is listed on several exchanges" in body
    assert 'href="/instruments/XASX:BHP/"' in body and 'href="/instruments/XNYS:BHP/"' in body
    assert "price-chart" not in body


def test_an_unknown_symbol_is_a_404_that_names_it(alice_client, aapl):
    response = alice_client.get("/instruments/ZZZZ/")
    assert response.status_code == 404
    assert "Unknown symbol: ZZZZ" in text(response)


def test_a_symbol_on_the_wrong_exchange_is_a_404_that_names_both(alice_client, aapl):
    response = alice_client.get("/instruments/XASX:AAPL/")
    assert response.status_code == 404
    assert "<code>AAPL</code> on <code>XASX</code>" in text(response)


def test_the_date_range_limits_the_chart(alice_client, aapl):
    response = alice_client.get("/instruments/AAPL/?start=2024-03-05&end=2024-03-07")
    assert candle(response)["x"] == ["2024-03-05", "2024-03-06", "2024-03-07"]
    assert "Raw prices, 2024-03-05 to 2024-03-07" in text(response)


def test_the_default_range_is_two_years_back_from_the_last_bar(alice_client, make_bars):
    days = [dt.date(2020, 1, 2), dt.date(2021, 6, 1), dt.date(2022, 6, 1), dt.date(2023, 6, 1)]
    make_bars("OLD", "XNYS", [bar(d, 10.0 + i) for i, d in enumerate(days)])
    response = alice_client.get("/instruments/OLD/")
    # Last bar 2023-06-01 - 2 years = 2021-06-01 (inclusive).
    assert candle(response)["x"] == ["2021-06-01", "2022-06-01", "2023-06-01"]
    body = text(response)
    assert 'href="?start=2022-12-01">6M</a>' in body  # 2023-06-01 - 6 months
    assert 'href="?start=2020-01-02">All</a>' in body
    assert 'href="?start=2021-06-01" aria-current="true">2Y</a>' in body
    assert body.count('aria-current="true"') == 2  # the 2Y button and the Raw toggle, nothing else


def test_on_a_short_history_only_the_first_equivalent_range_button_is_active(alice_client, aapl):
    # Five bars in one week: every button starts at the first bar, 2024-03-04, so they all show the same range.
    body = text(alice_client.get("/instruments/AAPL/"))
    assert 'href="?start=2024-03-04" aria-current="true">6M</a>' in body
    assert body.count('aria-current="true"') == 2


@pytest.mark.parametrize("query, field", [
    ("start=2024-13-01", "start"), ("end=yesterday", "end"), ("adjusted=maybe", "adjusted"),
    ("start=2024-03-08&end=2024-03-04", "end"),
])
def test_it_rejects_bad_chart_parameters_naming_the_field(alice_client, aapl, query, field):
    response = alice_client.get(f"/instruments/AAPL/?{query}")
    assert response.status_code == 400
    assert f"<strong>{field}</strong>:" in text(response)
    # The page still draws the default range.
    assert len(candle(response)["x"]) == 5


def test_quarantined_bars_are_left_out_of_the_chart_unless_asked_for(alice_client, aapl):
    flag(aapl, dt.date(2024, 3, 6), NOT_A_SESSION, quarantined=True)
    default = alice_client.get("/instruments/AAPL/")
    assert "2024-03-06" not in candle(default)["x"] and len(candle(default)["x"]) == 4
    assert "quarantined bars left out" in text(default)
    included = alice_client.get("/instruments/AAPL/?quarantined=1")
    assert "2024-03-06" in candle(included)["x"] and len(candle(included)["x"]) == 5


def test_the_latest_stats_skip_a_quarantined_last_bar(alice_client, aapl):
    flag(aapl, dt.date(2024, 3, 8), MISSING_CLOSE, quarantined=True)
    body = text(alice_client.get("/instruments/AAPL/"))
    # Latest usable bar is 7 March: 169.00, change 169.00 - 169.12 = -0.12 (-0.07%).
    assert "Close 2024-03-07" in body and "169.00" in body and "-0.12" in body and "-0.07%" in body


def test_the_instrument_page_lists_its_flagged_bars(alice_client, aapl):
    flag(aapl, dt.date(2024, 3, 5), ZERO_PRICE | OHLC_INCONSISTENT)
    flag(aapl, dt.date(2024, 3, 6), NOT_A_SESSION, quarantined=True)
    body = text(alice_client.get("/instruments/AAPL/"))
    table = body[body.index("<h2>Flagged bars</h2>"):]
    rows = re.findall(r"<tr>\s*<td class=\"nowrap\">(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", table, re.S)
    assert [(d, reasons, "yes" in q) for d, reasons, q in rows] == [
        ("2024-03-06", "date is not a session of the exchange", True),
        ("2024-03-05", "zero or negative price (stored as missing); OHLC inconsistent (low/high do not bound open/close)", False),
    ]


def test_an_instrument_without_bars_says_so(alice_client, make_bars):
    make_bars("NEW", "XNYS", [], name="Newly listed")
    response = alice_client.get("/instruments/NEW/")
    assert response.status_code == 200
    assert "No bars for NEW yet" in text(response) and "price-chart" not in text(response)


def test_the_instrument_page_stays_within_its_query_budget(alice_client, aapl, make_bars, django_assert_max_num_queries):
    many_instruments(make_bars, 30)
    days = [dt.date(2022, 1, 3) + dt.timedelta(days=i) for i in range(800)]
    make_bars("LONG", "XNYS", [bar(d, 10.0) for d in days])
    PriceBar.objects.filter(instrument__symbol="LONG", date__in=days[:150]).update(flags=ZERO_PRICE)
    # session, user, resolve, actions, span, reused-code cut, warm-up bars, shown bars, latest two bars,
    # flagged bars, stale banner (first page only: it is cached)
    with django_assert_max_num_queries(11):
        response = alice_client.get("/instruments/LONG/")
    assert response.status_code == 200
    with django_assert_max_num_queries(10):
        assert alice_client.get("/instruments/AAPL/?adjusted=1").status_code == 200


# --- data page ---------------------------------------------------------------------------------

def test_the_data_page_shows_coverage_stale_instruments_and_flags_by_reason(alice_client, aapl, make_bars):
    make_bars("MSFT", "XNAS", [bar(dt.date(2024, 3, 7), 400.0)], name="Microsoft Corporation")
    make_bars("BHP", "XASX", [bar(dt.date(2024, 3, 8), 45.0)])
    flag(aapl, dt.date(2024, 3, 5), ZERO_PRICE | OHLC_INCONSISTENT)
    flag(aapl, dt.date(2024, 3, 6), NOT_A_SESSION | MISSING_CLOSE, quarantined=True)
    flag(aapl, dt.date(2024, 3, 7), ZERO_PRICE)
    response = alice_client.get("/data/")
    assert response.status_code == 200
    body = text(response)
    # Exchanges come in code order: XASX, then XNAS, then missing sessions and the flagged bars.
    xnas = body[body.index("<h2>XNAS"):body.index("<h2>Missing sessions")]
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", xnas, re.S))
    assert ">2</a>" in facts["Instruments"]  # AAPL, MSFT
    assert facts["Bars"] == "6"  # 5 + 1
    assert facts["First bar"] == "2024-03-04" and facts["Latest bar"] == "2024-03-08"
    assert ">1</span>" in facts["Stale instruments"]  # MSFT ends 7 March, XNAS's latest bar is 8 March
    assert "3" in facts["Flagged bars"] and "1" in facts["Quarantined bars"]
    # Each reason links to the flagged bars with it: <a href="?reason=BIT&amp;exchange=XNAS...">label</a>.
    reasons = dict((label, (int(n), int(q))) for label, n, q in re.findall(
        r"<tr><td class=\"reason\"><a href=\"[^\"]*\">(.*?)</a></td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td></tr>",
        xnas))
    # Bitmasks 3, 12 and 1: zero price on two bars, OHLC on one, not-a-session and no-close on the quarantined one.
    assert reasons == {
        "zero or negative price (stored as missing)": (2, 0),
        "OHLC inconsistent (low/high do not bound open/close)": (1, 0),
        "date is not a session of the exchange": (1, 1),
        "no close price": (1, 1),
    }
    recent = body[body.index("<h2>Flagged bars"):]
    # Quarantined first (03-06), then the others newest first.
    assert recent.index("2024-03-06") < recent.index("2024-03-07") < recent.index("2024-03-05")
    assert 'href="/instruments/XNAS:AAPL/"' in recent


def test_the_data_page_without_data_shows_the_command(alice_client):
    body = text(alice_client.get("/data/"))
    assert "python manage.py ingest --provider sample" in body


def test_the_data_page_stays_within_its_query_budget(alice_client, aapl, make_bars, django_assert_max_num_queries):
    many_instruments(make_bars, 30)
    for day in [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]:
        flag(aapl, day, ZERO_PRICE)
    # session, user, bars per instrument, instruments, flag counts, the longest gaps' dates, flagged bars
    # (count, page, their corrections), recent corrections, freshness (cached)
    with django_assert_max_num_queries(11):
        assert alice_client.get("/data/").status_code == 200


def test_an_unknown_page_gets_the_site_404(alice_client):
    response = alice_client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Nothing lives at <code>/no-such-page/</code>" in text(response)
