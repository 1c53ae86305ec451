"""The daily chain (marketdata.daily): sessions, steps, idempotence, failures, hooks, the lock, the command.

Bars are real: AAPL and MSFT (Nasdaq) and BRK.B (NYSE) from the AlphaVantage S&P 500 file, BHP and CBA
from the ASX top-300 file, served by the local provider server (Tiingo/Yahoo/Stooq formats). Each test
stores all but the last sessions and lets the chain fetch the rest.
"""
import datetime as dt
import threading
import time
from functools import lru_cache

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from marketdata import daily
from marketdata.models import IngestRun, Instrument, PriceBar
from marketdata.providers.localserver import ProviderServer
from marketdata.services import store_bars
from tests.conftest import MARKETDATA

UTC = dt.timezone.utc
US = {"AAPL": "XNAS", "MSFT": "XNAS", "BRK.B": "XNYS"}
US_SESSION = dt.date(2021, 4, 20)  # a Tuesday; the file's last session is Wed 21 April
ASX_SESSION = dt.date(2024, 3, 8)  # a Friday
# Tue 20 April 2021 18:30 New York (EDT, UTC-4): NYSE closed at 20:00 UTC.
US_EVENING = dt.datetime(2021, 4, 20, 22, 30, tzinfo=UTC)
# Fri 8 March 2024 17:30 Sydney (AEDT, UTC+11): ASX closed at 05:00 UTC.
ASX_EVENING = dt.datetime(2024, 3, 8, 6, 30, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@lru_cache(maxsize=1)
def real_bars():
    us = pd.read_parquet(MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet",
                         filters=[("ticker", "in", list(US)), ("date", ">=", dt.date(2021, 3, 1))])
    us["exchange"] = us["ticker"].map(US)
    asx = pd.read_parquet(MARKETDATA / "asx" / "asx_daily_top300_2010_2024.parquet",
                          filters=[("ticker", "in", ["BHP", "CBA"]), ("date", ">=", dt.date(2024, 2, 1)),
                                   ("date", "<=", dt.date(2024, 3, 28))])
    return pd.concat([us, asx.assign(exchange="XASX")], ignore_index=True)


def preload(through_us=US_SESSION - dt.timedelta(days=1), through_asx=ASX_SESSION - dt.timedelta(days=1)):
    """Store the real bars up to the day before each session, as an earlier ingest would have."""
    frame = real_bars()
    through = pd.to_datetime(frame["exchange"].map(lambda e: through_asx if e == "XASX" else through_us))
    rows = frame[pd.to_datetime(frame["date"]) <= through].reset_index(drop=True)
    adjusted = rows["adjusted_close"].fillna(rows["close"]) if "adjusted_close" in rows else rows["close"]
    bars = pd.DataFrame({
        "symbol": rows["ticker"].astype(str), "exchange": rows["exchange"],
        "currency": rows["exchange"].map(lambda e: "AUD" if e == "XASX" else "USD"), "name": "",
        "date": pd.to_datetime(rows["date"]).astype("datetime64[s]"),
        **{c: rows[c].astype("float64") for c in ("open", "high", "low", "close", "volume")},
        "adj_factor": (adjusted / rows["close"]).astype("float64"),
    })
    store_bars(bars=bars, source="test")


@pytest.fixture
def server(settings, monkeypatch):
    with ProviderServer(real_bars()) as running:
        settings.PROVIDER_URLS = running.urls
        settings.PROVIDER_RATE = 0
        settings.PROVIDER_RETRIES = 1
        settings.PROVIDER_TIMEOUT = 5.0
        settings.TIINGO_API_KEY = "test-token"
        settings.DAILY_PROVIDERS = {"XNYS": "tiingo", "XASX": "yahoo"}
        settings.DAILY_HOOKS = []
        monkeypatch.setattr("marketdata.providers.base.sleep", lambda seconds: None)
        yield running


def bars_on(day):
    return sorted(PriceBar.objects.filter(date=day).values_list("instrument__symbol", "close"))


# --- sessions --------------------------------------------------------------------------------------

def test_the_default_session_is_the_latest_closed_in_the_exchange_own_time_zone():
    # 01:00 UTC Wed 21 April 2021 is still Tue 20 April in New York (21:00 EDT), after its 16:00 close.
    assert daily.resolve_session("XNYS", now=dt.datetime(2021, 4, 21, 1, 0, tzinfo=UTC)) == US_SESSION
    # 04:59 UTC Fri 8 March 2024 is 15:59 in Sydney: Friday has not closed, Thursday is the latest.
    assert daily.resolve_session("XASX", now=dt.datetime(2024, 3, 8, 4, 59, tzinfo=UTC)) == dt.date(2024, 3, 7)
    assert daily.resolve_session("XASX", now=dt.datetime(2024, 3, 8, 5, 0, tzinfo=UTC)) == ASX_SESSION


def test_it_refuses_a_date_that_is_not_a_session_naming_the_sessions_around_it():
    with pytest.raises(daily.DailyError) as error:
        daily.run_daily(exchange="XNYS", session=dt.date(2024, 3, 9), now=US_EVENING)
    assert str(error.value) == ("Sat 2024-03-09 is not an XNYS session "
                                "(the sessions either side are 2024-03-08 and 2024-03-11)")
    assert not IngestRun.objects.exists()


def test_it_refuses_a_session_that_has_not_closed_yet():
    # 04:00 UTC is 15:00 in Sydney (AEDT): the ASX closes at 16:00 = 05:00 UTC.
    with pytest.raises(daily.DailyError, match=r"has not closed yet \(it closes at 16:00 Australia/Sydney, 05:00 UTC\)"):
        daily.run_daily(exchange="XASX", session=ASX_SESSION, now=dt.datetime(2024, 3, 8, 4, 0, tzinfo=UTC))


def test_it_refuses_an_exchange_without_a_daily_chain():
    with pytest.raises(daily.DailyError, match="'XNAS' has no daily chain"):
        daily.run_daily(exchange="XNAS")


# --- the chain ---------------------------------------------------------------------------------------

def test_it_ingests_the_missing_session_then_refreshes_the_panels(server):
    preload()
    run = daily.run_daily(exchange="XNYS", now=US_EVENING)
    assert (run.kind, run.exchange, run.session, run.status) == ("daily", "XNYS", US_SESSION, "success")
    assert [step["step"] for step in run.steps] == ["ingest", "panels"]
    assert all(step["status"] == "ok" and step["seconds"] >= 0 for step in run.steps)
    # One bar each for AAPL, MSFT (Nasdaq) and BRK.B (NYSE): the real closes of 20 April 2021.
    assert bars_on(US_SESSION) == [("AAPL", 133.11), ("BRK.B", 267.89), ("MSFT", 258.26)]
    assert (run.symbols, run.rows_inserted, run.rows_updated) == (3, 3, 0)
    ingest = run.steps[0]["detail"]
    assert ingest["provider"] == "tiingo"
    assert [(v["venue"], v["inserted"]) for v in ingest["venues"]] == [("XNYS", 1), ("XNAS", 2)]
    assert server.symbols_asked("tiingo").count("AAPL") >= 1 and "BHP.AX" not in server.symbols_asked()
    panels = run.steps[1]["detail"]
    assert panels["written"] and panels["since"] == "2021-04-20"  # the day after every stored last bar
    assert run.finished_at is not None and run.params["trigger"] == "call"


def test_a_second_run_for_the_same_session_changes_nothing_but_says_so(server):
    preload()
    first = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    asked = len(server.hits)
    updated_at = sorted(PriceBar.objects.values_list("updated_at", flat=True))
    second = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert second.pk != first.pk and second.status == "success"
    assert (second.rows_inserted, second.rows_updated, second.rows_read) == (0, 0, 0)
    assert len(server.hits) == asked  # nothing left to fetch: no request at all
    assert second.steps[1]["detail"]["written"] == [] and second.steps[1]["detail"]["skipped"] > 0
    assert sorted(PriceBar.objects.values_list("updated_at", flat=True)) == updated_at
    assert IngestRun.objects.filter(kind="daily", exchange="XNYS", session=US_SESSION).count() == 2


def test_the_asx_run_fetches_from_its_own_provider_by_its_calendar(server):
    preload()
    run = daily.run_daily(exchange="XASX", now=ASX_EVENING)
    assert (run.session, run.status, run.provider) == (ASX_SESSION, "success", "yahoo")
    assert bars_on(ASX_SESSION) == [("BHP", 43.95), ("CBA", 121.45)]
    assert set(server.symbols_asked("yahoo")) == {"BHP.AX", "CBA.AX"}
    assert not server.symbols_asked("tiingo")


def test_the_provider_per_exchange_comes_from_the_settings(server, settings):
    preload()
    settings.DAILY_PROVIDERS = {"XNYS": "stooq", "XASX": "yahoo"}
    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert run.provider == "stooq" and run.rows_inserted == 3
    assert set(server.symbols_asked("stooq")) == {"aapl.us", "msft.us", "brk-b.us"}


def test_a_failing_step_stops_the_chain_names_the_error_and_keeps_the_bars(server, settings, monkeypatch):
    preload()
    calls = []
    settings.DAILY_HOOKS = ["tests.marketdata.test_daily.recording_hook"]
    monkeypatch.setattr("tests.marketdata.test_daily.HOOK_CALLS", calls)

    def broken(**kwargs):
        raise OSError("bucket parakeet-data-dev: Access Denied")

    monkeypatch.setattr("marketdata.panels.refresh_panels", broken)
    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert run.status == "failed"
    assert [(s["step"], s["status"]) for s in run.steps] == [("ingest", "ok"), ("panels", "failed")]
    assert run.steps[1]["detail"] == {"error": "bucket parakeet-data-dev: Access Denied"}
    assert run.errors == ["panels: bucket parakeet-data-dev: Access Denied"]
    assert calls == []  # the hook after the failed step never ran
    assert len(bars_on(US_SESSION)) == 3  # what the ingest stored stays


def test_a_provider_that_fails_every_symbol_ends_the_run_as_provider_error(server):
    preload()
    for symbol in ("AAPL", "MSFT", "BRK-B"):
        server.script("tiingo", symbol, then="error")
    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert run.status == "provider_error"
    assert [(s["step"], s["status"]) for s in run.steps] == [("ingest", "provider_error")]
    assert run.errors[-1].startswith("ingest: XNYS: ingest run #")
    assert bars_on(US_SESSION) == []
    assert PriceBar.objects.count() > 0  # the stored history is untouched


def test_a_symbol_without_data_makes_the_run_partial_and_the_chain_goes_on(server):
    preload()
    server.script("tiingo", "MSFT", then="empty")
    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert run.status == "partial"
    assert [(s["step"], s["status"]) for s in run.steps] == [("ingest", "partial"), ("panels", "ok")]
    assert [symbol for symbol, _ in bars_on(US_SESSION)] == ["AAPL", "BRK.B"]
    assert any(error.startswith("ingest XNAS: MSFT:") for error in run.errors)


HOOK_CALLS = []


def recording_hook(*, exchange, session, run):
    HOOK_CALLS.append((exchange, session, run.pk))
    return {"snapshots": 0}


def failing_hook(*, exchange, session, run):
    raise RuntimeError("scan 'momentum' needs 252 sessions, found 31")


def test_the_hooks_run_after_the_panels_with_exchange_session_and_run(server, settings, monkeypatch):
    preload()
    calls = []
    monkeypatch.setattr("tests.marketdata.test_daily.HOOK_CALLS", calls)
    settings.DAILY_HOOKS = ["tests.marketdata.test_daily.recording_hook", "tests.marketdata.test_daily.failing_hook"]
    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert [(s["step"], s["status"]) for s in run.steps] == [
        ("ingest", "ok"), ("panels", "ok"),
        ("hook:tests.marketdata.test_daily.recording_hook", "ok"),
        ("hook:tests.marketdata.test_daily.failing_hook", "failed"),
    ]
    assert calls == [("XNYS", US_SESSION, run.pk)]
    assert run.steps[2]["detail"] == {"snapshots": 0}
    assert run.status == "failed"
    assert run.errors == ["hook:tests.marketdata.test_daily.failing_hook: scan 'momentum' needs 252 sessions, found 31"]


def test_a_hook_path_that_does_not_import_fails_its_step(server, settings):
    preload()
    settings.DAILY_HOOKS = ["scanner.tasks.no_such_hook"]
    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert run.steps[-1]["step"] == "hook:scanner.tasks.no_such_hook" and run.steps[-1]["status"] == "failed"
    assert "no_such_hook" in run.errors[-1]


# --- scheduled runs ----------------------------------------------------------------------------------

def test_a_scheduled_run_skips_a_session_that_already_succeeded(server):
    preload()
    first = daily.run_scheduled(exchange="XNYS", now=US_EVENING)
    assert first.session == US_SESSION and first.status == "success"
    # The second UTC rule an hour later (19:30 EDT): same session, already done, no row.
    assert daily.run_scheduled(exchange="XNYS", now=US_EVENING + dt.timedelta(hours=1)) is None
    assert IngestRun.objects.filter(kind="daily").count() == 1


def test_a_scheduled_run_does_not_repeat_a_partial_session(server):
    # MSFT had nothing for the session: the run is partial, and the second UTC rule leaves it there
    # (re-asking now would only find the same gap; the next session's run asks again).
    preload()
    server.script("tiingo", "MSFT", then="empty")
    assert daily.run_scheduled(exchange="XNYS", now=US_EVENING).status == "partial"
    assert daily.run_scheduled(exchange="XNYS", now=US_EVENING + dt.timedelta(hours=1)) is None


def test_a_scheduled_run_retries_a_session_whose_run_failed(server, monkeypatch):
    preload()
    monkeypatch.setattr("marketdata.panels.refresh_panels", lambda **kw: 1 / 0)
    assert daily.run_scheduled(exchange="XNYS", now=US_EVENING).status == "failed"
    monkeypatch.undo()
    again = daily.run_scheduled(exchange="XNYS", now=US_EVENING + dt.timedelta(hours=1))
    assert again.status == "success" and again.session == US_SESSION


def test_codes_that_stopped_trading_or_were_never_loaded_are_not_asked_every_day(server):
    # OLD's last bar is months before the session (a delisting nobody recorded); NEW has no bar at all
    # (made by a universe import). Neither is asked, neither is marked anything, and the run succeeds.
    preload()
    old = Instrument.objects.create(symbol="OLD", exchange="XNAS", currency="USD")
    PriceBar.objects.create(instrument=old, date=dt.date(2021, 1, 4), close=5.0, source="test")
    Instrument.objects.create(symbol="NEW", exchange="XNYS", currency="USD")

    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)

    assert run.status == "success"
    assert set(server.symbols_asked("tiingo")) == {"AAPL", "MSFT", "BRK-B"}
    assert {venue["venue"]: venue["dormant"] for venue in run.steps[0]["detail"]["venues"]} == {"XNAS": 1, "XNYS": 1}
    assert run.params["since"] == "2021-04-20"  # the stalest awake instrument's last bar was the 19th
    assert Instrument.objects.filter(symbol__in=["OLD", "NEW"], active=True).count() == 2


# --- BR-14: "rate limited, retry scheduled" is a retry that happens --------------------------------------

def rate_limited_run(server):
    preload()
    server.script("tiingo", "MSFT", then="throttle:2")  # 429 with Retry-After: 2 on every request
    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert run.status == "rate_limited" and run.retry_at is not None
    return run


def test_br14_the_retry_sweep_waits_for_retry_after_then_runs_the_session_again(server):
    run = rate_limited_run(server)
    # Before Retry-After has passed: nothing.
    assert daily.retry_due(now=run.retry_at - dt.timedelta(seconds=1)) == []
    server.script("tiingo", "MSFT")  # the provider has calmed down
    [retry] = daily.retry_due(now=run.retry_at)
    assert (retry.session, retry.status, retry.params["trigger"]) == (US_SESSION, "success", "retry")
    assert bars_on(US_SESSION) == [("AAPL", 133.11), ("BRK.B", 267.89), ("MSFT", 258.26)]
    # Done: the next sweep finds the latest run succeeded and leaves it.
    assert daily.retry_due(now=run.retry_at + dt.timedelta(hours=1)) == []


def test_br14_the_retry_sweep_gives_up_after_the_configured_retries(server, settings):
    settings.DAILY_MAX_RETRIES = 2
    run = rate_limited_run(server)
    later = run.retry_at
    for _ in range(2):
        [retry] = daily.retry_due(now=later)
        assert retry.status == "rate_limited"
        later = retry.retry_at
    assert daily.retry_due(now=later) == []
    assert IngestRun.objects.filter(kind="daily", session=US_SESSION).count() == 3
    assert Instrument.objects.get(symbol="MSFT").active  # throttling is never taken as delisting


def test_the_due_session_waits_for_the_local_run_time():
    # 17:59 New York on Tue 20 April 2021 (21:59 UTC): 18:00 has not come, Monday is the due session.
    assert daily.due_session("XNYS", dt.datetime(2021, 4, 20, 21, 59, tzinfo=UTC)) == dt.date(2021, 4, 19)
    assert daily.due_session("XNYS", dt.datetime(2021, 4, 20, 22, 0, tzinfo=UTC)) == US_SESSION
    # Saturday morning in Sydney: Friday's session is due.
    assert daily.due_session("XASX", dt.datetime(2024, 3, 8, 23, 0, tzinfo=UTC)) == ASX_SESSION
    # Good Friday 29 March 2024 (ASX closed): Thursday is still the due session that evening.
    assert daily.due_session("XASX", dt.datetime(2024, 3, 29, 7, 0, tzinfo=UTC)) == dt.date(2024, 3, 28)


# --- two runs at once (PITFALLS BR-30's duplicate beat, BR-32) -----------------------------------------

@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_for_one_exchange_do_not_ingest_twice(server):
    if connection.vendor != "postgresql":
        pytest.skip("the cross-process lock is PostgreSQL's advisory lock; SQLite has one writer")
    preload()
    server.script("tiingo", "BRK-B", "slow:0.5")  # the first run holds the lock for at least half a second
    runs, errors = {}, []

    def run(name):
        try:
            runs[name] = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
        except Exception as exc:  # pragma: no cover - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    first = threading.Thread(target=run, args=("first",))
    first.start()
    deadline = time.monotonic() + 10
    while not server.hits and time.monotonic() < deadline:
        time.sleep(0.01)  # until the first run is inside its ingest
    second = threading.Thread(target=run, args=("second",))
    second.start()
    first.join(20)
    second.join(20)
    assert not errors
    # BRK.B, AAPL, MSFT fetched once each: the second run waited, then found nothing to fetch.
    assert sorted(h.symbol for h in server.hits) == ["AAPL", "BRK-B", "MSFT"]
    assert runs["first"].rows_inserted == 3 and runs["second"].rows_inserted == 0
    assert runs["second"].steps[0]["step"] == "lock" and runs["second"].steps[0]["seconds"] > 0
    assert runs["second"].status == "success"
    assert PriceBar.objects.filter(date=US_SESSION).count() == 3


def test_a_run_that_cannot_get_the_lock_in_time_fails_without_running(server, settings):
    if connection.vendor == "postgresql":
        settings.DAILY_LOCK_WAIT_SECONDS = 1
        with connection.cursor() as cursor:
            # Another session holding the lock: a second connection.
            from django.db import connections

            other = connections.create_connection("default")
            other.connect()
            with other.cursor() as held:
                held.execute("SELECT pg_advisory_lock(%s)", [daily.zlib.crc32(b"parakeet.daily.XNYS")])
                run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
            other.close()
    else:
        settings.DAILY_LOCK_WAIT_SECONDS = 1
        lock = daily._process_locks["XNYS"]
        lock.acquire()
        try:
            run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
        finally:
            lock.release()
    assert run.status == "failed"
    assert [s["step"] for s in run.steps] == ["lock"]
    assert run.errors == ["lock: another XNYS daily run still held the lock after 1 s; nothing was run"]
    assert not server.hits


# --- the command ---------------------------------------------------------------------------------------

def test_the_command_runs_one_exchange_and_prints_its_steps(server, capsys):
    preload()
    call_command("daily", "--exchange", "XNYS", "--date", "2021-04-20")
    out = capsys.readouterr().out
    assert out.startswith("XNYS 2021-04-20: success (run #")
    assert "3 inserted, 0 updated" in out and "ingest ok" in out and "panels ok" in out
    assert IngestRun.objects.get(kind="daily").params["trigger"] == "command"


def test_the_command_without_an_exchange_runs_both(server, capsys):
    preload()
    call_command("daily", "--date", "2024-03-08")  # a session of both calendars
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["XASX 2024-03-08", "XNYS 2024-03-08"]
    assert set(IngestRun.objects.filter(kind="daily").values_list("exchange", flat=True)) == {"XASX", "XNYS"}


def test_the_command_rejects_a_non_session_before_running_anything(server):
    with pytest.raises(CommandError, match="Sat 2024-03-09 is not an XASX session"):
        call_command("daily", "--date", "2024-03-09")
    with pytest.raises(CommandError, match=r"--date '8/3/2024' is not a date \(expected YYYY-MM-DD\)"):
        call_command("daily", "--date", "8/3/2024")
    assert not IngestRun.objects.exists()


def test_the_command_fails_when_the_chain_fails(server, monkeypatch):
    preload()
    monkeypatch.setattr("marketdata.panels.refresh_panels", lambda **kw: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(CommandError, match=r"daily run failed: XNYS 2021-04-20: panels: disk full"):
        call_command("daily", "--exchange", "XNYS", "--date", "2021-04-20")


# --- the Celery task ------------------------------------------------------------------------------------

def test_the_task_takes_strings_and_calls_the_service(server):
    from marketdata.tasks import run_daily_chain

    preload()
    run_id = run_daily_chain.delay("XNYS", session="2021-04-20").get()
    run = IngestRun.objects.get(pk=run_id)
    assert (run.exchange, run.session, run.status, run.params["trigger"]) == ("XNYS", US_SESSION, "success", "task")


def test_the_instruments_of_an_exchange_without_any_are_not_asked_for(server):
    preload()
    Instrument.objects.filter(exchange="XNAS").update(active=False)
    run = daily.run_daily(exchange="XNYS", session=US_SESSION, now=US_EVENING)
    assert [v["venue"] for v in run.steps[0]["detail"]["venues"]] == ["XNYS"]
    assert bars_on(US_SESSION) == [("BRK.B", 267.89)]
