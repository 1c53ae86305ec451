"""Freshness per exchange (marketdata.freshness), the stale-data banner on every page, the run pages,
and the daily chain's settings readers."""
import datetime as dt
import re

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from marketdata import freshness
from marketdata.models import IngestRun

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc
# Wed 13 March 2024 22:00 UTC: NYSE closed Mon 11, Tue 12 and Wed 13 March after the bars of Fri 8 March.
WEDNESDAY_NIGHT = dt.datetime(2024, 3, 13, 22, 0, tzinfo=UTC)


def text(response):
    return response.content.decode()


def bar(day, close):
    return (day, close, close + 1, close - 1, close, 1_000)


# --- freshness --------------------------------------------------------------------------------------

def test_monday_afternoon_in_utc_calls_friday_current_in_new_york_and_behind_in_sydney():
    monday = dt.datetime(2024, 3, 11, 15, 0, tzinfo=UTC)  # 11:00 in New York, 02:00 Tuesday in Sydney
    friday = dt.date(2024, 3, 8)
    assert freshness.freshness("XNAS", friday, monday) == {
        "sessions_behind": 0, "days_ago": 3, "status": "current", "expected": friday}
    # Sydney's Monday session closed at 05:00 UTC: one session behind, which is not yet stale.
    assert freshness.freshness("XASX", friday, monday) == {
        "sessions_behind": 1, "days_ago": 3, "status": "behind", "expected": dt.date(2024, 3, 11)}


def test_three_closed_sessions_after_the_last_bar_are_stale():
    state = freshness.freshness("XNYS", dt.date(2024, 3, 8), WEDNESDAY_NIGHT)
    assert (state["sessions_behind"], state["status"], state["expected"]) == (3, "stale", dt.date(2024, 3, 13))


def test_a_holiday_is_not_a_session_behind():
    # Good Friday 29 March 2024: no session in Sydney or New York; Thursday's bars are current on Saturday.
    saturday = dt.datetime(2024, 3, 30, 12, 0, tzinfo=UTC)
    assert freshness.freshness("XASX", dt.date(2024, 3, 28), saturday)["sessions_behind"] == 0
    assert freshness.freshness("XNYS", dt.date(2024, 3, 28), saturday)["sessions_behind"] == 0


def test_fx_without_a_calendar_counts_weekdays_before_today():
    # Last bar Fri 8 March; on Wed 13 March the weekdays strictly between are Mon 11 and Tue 12.
    assert freshness.freshness("FX", dt.date(2024, 3, 8), WEDNESDAY_NIGHT) == {
        "sessions_behind": 2, "days_ago": 5, "status": "stale", "expected": None}


# --- the banner -------------------------------------------------------------------------------------

@time_machine.travel(WEDNESDAY_NIGHT, tick=False)
@pytest.mark.parametrize("url", ["/", "/instruments/", "/instruments/AAPL/", "/data/", "/data/runs/"])
def test_every_page_says_which_exchange_is_how_many_sessions_behind(alice_client, aapl, url):
    body = text(alice_client.get(url))
    banner = re.search(r'<div class="notice error stale-banner" role="alert">(.*?)</div>', body, re.S).group(1)
    assert "Stale data:" in banner
    assert "Nasdaq ends 2024-03-08, 3 sessions behind (expected 2024-03-13)." in banner


@time_machine.travel(WEDNESDAY_NIGHT, tick=False)
def test_stale_data_no_daily_run_ever_fetched_says_how_to_start_one(alice_client, aapl):
    body = text(alice_client.get("/instruments/"))
    assert "No daily run has fetched XNAS yet" in body and "manage.py daily" in body
    IngestRun.objects.create(kind="daily", provider="tiingo", exchange="XNYS", session=dt.date(2024, 3, 8),
                             status="success")
    freshness.forget()
    assert "No daily run has fetched" not in text(alice_client.get("/instruments/"))


@time_machine.travel(dt.datetime(2024, 3, 11, 15, 0, tzinfo=UTC), tick=False)
def test_no_banner_while_every_exchange_is_at_most_one_session_behind(alice_client, aapl, make_bars):
    make_bars("BHP", "XASX", [bar(dt.date(2024, 3, 8), 45.0)])  # one session behind in Sydney
    assert "stale-banner" not in text(alice_client.get("/instruments/"))


@time_machine.travel(dt.datetime(2024, 3, 8, 23, 0, tzinfo=UTC), tick=False)
def test_the_banner_shows_the_last_daily_run_when_it_failed(alice_client, aapl):
    run = IngestRun.objects.create(kind="daily", provider="tiingo", exchange="XNYS", session=dt.date(2024, 3, 8),
                                   status="failed", errors=["ingest XNAS: AAPL: no data in range", "panels: disk full"])
    body = text(alice_client.get("/"))
    assert (f'<strong>Daily run failed:</strong> XNYS 2024-03-08, <a href="/data/runs/{run.pk}/">run #{run.pk}</a>: '
            "panels: disk full") in body
    assert "Stale data:" not in body  # AAPL's Friday bar is current


@time_machine.travel(dt.datetime(2024, 3, 8, 23, 0, tzinfo=UTC), tick=False)
def test_a_later_successful_run_clears_the_failure(alice_client, aapl):
    IngestRun.objects.create(kind="daily", provider="tiingo", exchange="XNYS", session=dt.date(2024, 3, 7),
                             status="failed", errors=["panels: disk full"])
    IngestRun.objects.create(kind="daily", provider="tiingo", exchange="XNYS", session=dt.date(2024, 3, 8),
                             status="success")
    assert "Daily run failed" not in text(alice_client.get("/"))


def test_anonymous_pages_have_no_banner(client, aapl):
    assert "stale-banner" not in text(client.get("/accounts/login/"))


@time_machine.travel(WEDNESDAY_NIGHT, tick=False)
def test_the_banner_costs_one_query_a_minute(alice_client, aapl, django_assert_num_queries):
    alice_client.get("/instruments/")  # reads the freshness, then caches it
    with django_assert_num_queries(3):  # session, user, count (no match: no page, no coverage)
        body = text(alice_client.get("/instruments/?q=zzz"))
    assert "3 sessions behind" in body
    freshness.forget()  # what the daily chain does when it ends
    with django_assert_num_queries(4):  # ... and the freshness read again
        alice_client.get("/instruments/?q=zzz")


# --- the data page and the run pages -------------------------------------------------------------------

@time_machine.travel(WEDNESDAY_NIGHT, tick=False)
def test_the_data_page_shows_latest_and_expected_session_per_exchange_with_the_last_daily_run(alice_client, aapl,
                                                                                            make_bars):
    make_bars("BHP", "XASX", [bar(dt.date(2024, 3, 13), 45.0)])
    run = IngestRun.objects.create(kind="daily", provider="yahoo", exchange="XASX", session=dt.date(2024, 3, 13),
                                   status="success", finished_at=dt.datetime(2024, 3, 13, 6, 31, tzinfo=UTC))
    body = text(alice_client.get("/data/"))
    table = body[body.index("<h2>Freshness</h2>"):body.index("</section>", body.index("<h2>Freshness</h2>"))]
    xasx = re.search(r"<tr>\s*<td><strong>XASX</strong>.*?</tr>", table, re.S).group(0)
    assert "2024-03-13" in xasx and "up to date" in xasx
    assert f'<a href="/data/runs/{run.pk}/">#{run.pk}</a>' in xasx and "success" in xasx
    xnas = re.search(r"<tr>\s*<td><strong>XNAS</strong>.*?</tr>", table, re.S).group(0)
    cells = re.findall(r'<td class="nowrap">(.*?)</td>', xnas)
    assert cells == ["2024-03-08", "2024-03-13"]  # held, expected
    assert "stale: 3 sessions behind" in xnas and "none yet" in xnas


def test_the_run_page_shows_each_step_of_a_daily_run(alice_client):
    run = IngestRun.objects.create(
        kind="daily", provider="tiingo", exchange="XNYS", session=dt.date(2021, 4, 20), status="failed",
        rows_inserted=3, errors=["panels: disk full"],
        steps=[{"step": "ingest", "status": "ok", "seconds": 1.234, "detail": {"inserted": 3}},
               {"step": "panels", "status": "failed", "seconds": 0.5, "detail": {"error": "disk full"}}])
    body = text(alice_client.get(f"/data/runs/{run.pk}/"))
    assert f"Run #{run.pk}: Daily chain XNYS 2021-04-20" in body
    steps = re.findall(r'<tr>\s*<td class="nowrap">(\w+)</td>\s*<td><span class="badge (\w+)">(\w+)</span></td>\s*'
                       r'<td class="num">([\d.]+)</td>', body)
    assert steps == [("ingest", "ok", "ok", "1.23"), ("panels", "error", "failed", "0.50")]
    assert "<li>panels: disk full</li>" in body


def test_the_run_list_links_each_run(alice_client):
    run = IngestRun.objects.create(kind="daily", provider="yahoo", exchange="XASX", session=dt.date(2024, 3, 8))
    body = text(alice_client.get("/data/runs/"))
    assert f'<a href="/data/runs/{run.pk}/">{run.pk}</a>' in body and "Daily chain" in body


def test_an_unknown_run_is_the_site_404(alice_client):
    response = alice_client.get("/data/runs/999999/")
    assert response.status_code == 404 and "Nothing lives at" in text(response)


# --- settings -------------------------------------------------------------------------------------------

def test_the_daily_providers_default_and_accept_overrides(settings_from):
    assert settings_from()["DAILY_PROVIDERS"] == {"XNYS": "tiingo", "XASX": "yahoo"}
    s = settings_from(PARAKEET_DAILY_PROVIDERS=" xasx = Stooq ")
    assert s["DAILY_PROVIDERS"] == {"XNYS": "tiingo", "XASX": "stooq"}
    assert settings_from()["DAILY_HOOKS"] == ["trades.daily.snapshot_portfolios", "scanner.services.scan_daily"]
    hooks = settings_from(PARAKEET_DAILY_HOOKS="trades.services.snapshot_daily,scanner.services.scan_daily")
    assert hooks["DAILY_HOOKS"] == ["trades.services.snapshot_daily", "scanner.services.scan_daily"]


@pytest.mark.parametrize("value, message", [
    ("XNYS", "'XNYS' is not KEY=VALUE"),
    ("XLON=yahoo", "unknown key 'XLON' (known: XASX, XNYS)"),
    ("XNYS=bloomberg", "XNYS='bloomberg' is not one of tiingo, yahoo, stooq"),
    ("XNYS=tiingo,xnys=stooq", "XNYS is given twice"),
])
def test_nonsense_daily_providers_stop_the_boot(settings_from, value, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(f"PARAKEET_DAILY_PROVIDERS: {message}")):
        settings_from(PARAKEET_DAILY_PROVIDERS=value)


def test_a_hook_that_is_not_a_dotted_path_stops_the_boot(settings_from):
    with pytest.raises(ImproperlyConfigured, match=r"PARAKEET_DAILY_HOOKS: 'snapshots' is not a dotted path"):
        settings_from(PARAKEET_DAILY_HOOKS="snapshots")


def test_a_run_killed_mid_way_is_shown_failed_as_interrupted_not_running_forever(settings, make_bars):
    # A Lambda timeout or a restart kills the process before it can record how the run ended.
    settings.INGEST_MAX_SECONDS = 3600
    make_bars("BHP", "XASX", [bar(dt.date(2024, 3, 7), 45.0)])
    now = dt.datetime(2024, 3, 11, 9, 0, tzinfo=dt.timezone.utc)
    killed = IngestRun.objects.create(kind="daily", provider="yahoo", exchange="XASX", session=dt.date(2024, 3, 8))
    recent = IngestRun.objects.create(kind="bars", provider="csv")
    IngestRun.objects.filter(pk=killed.pk).update(started_at=now - dt.timedelta(minutes=61))
    IngestRun.objects.filter(pk=recent.pk).update(started_at=now - dt.timedelta(minutes=59))
    with time_machine.travel(now, tick=False):
        state = freshness.banner()
    killed.refresh_from_db()
    assert killed.status == "failed" and killed.finished_at == now
    assert killed.errors == ["interrupted: still running after 60 minutes, so its process is gone (a Lambda timeout, "
                             "a restart); what it had committed is kept, and running it again is safe"]
    assert [run["id"] for run in state["failed"]] == [killed.pk]  # the banner says so, like any failed run
    assert IngestRun.objects.get(pk=recent.pk).status == "running"  # an hour is not up: it may be working


@pytest.mark.parametrize("exchange, start, end", [
    ("XNYS", dt.date(2021, 4, 22), dt.date(2026, 12, 3)),  # years behind: the page must not list them
    ("XASX", dt.date(2024, 3, 9), dt.date(2024, 3, 11)),  # a weekend, then Monday
    ("XNYS", dt.date(2024, 3, 8), dt.date(2024, 3, 8)),  # one session
    ("XNYS", dt.date(2024, 3, 9), dt.date(2024, 3, 10)),  # none
    ("XNYS", dt.date(2024, 3, 12), dt.date(2024, 3, 8)),  # an empty range
])
def test_counting_sessions_agrees_with_listing_them(exchange, start, end):
    from marketdata import calendars

    assert calendars.count_sessions_between(exchange, start, end) == len(calendars.sessions_between(exchange, start, end))
