"""ingest_bars from the HTTP providers against the local server: incremental windows, run statuses,
PITFALLS BR-12 and BR-14, time-zone dating. Real bars (AlphaVantage S&P 500, ASX top 300).
"""
import datetime as dt
import logging

import pytest
from django.core.management import CommandError, call_command

from marketdata.errors import IngestError
from marketdata.models import CorporateAction, Instrument, IngestRun, PriceBar
from marketdata.services import ingest_bars

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("providers_at")]


def closes(symbol, exchange):
    return list(PriceBar.objects.filter(instrument__symbol=symbol, instrument__exchange=exchange)
                .order_by("date").values_list("date", "close"))


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


def test_br12_one_ticker_without_data_does_not_fail_the_batch(server):
    server.script("tiingo", "RMG", then="empty")

    run = ingest_bars(provider="tiingo", symbols=["GOOGL", "RMG"], start=dt.date(2018, 5, 15),
                      end=dt.date(2018, 5, 31))

    # 05-15..18 (4) + 05-21..25 (5) + 05-29..31 (3) = 12 sessions; 05-28 was Memorial Day.
    googl = closes("GOOGL", "XNYS")
    assert len(googl) == 12
    assert dt.date(2018, 5, 28) not in [d for d, _ in googl]
    assert googl[0] == (dt.date(2018, 5, 15), 1084.87) and googl[-1] == (dt.date(2018, 5, 31), 1100.00)
    assert (run.status, run.rows_inserted) == (IngestRun.Status.PARTIAL, 12)
    assert run.errors == ["RMG: no data in range 2018-05-15..2018-05-31"]
    assert not Instrument.objects.filter(symbol="RMG").exists()
    assert not PriceBar.objects.filter(close__lte=0).exists()


def test_br14_throttled_symbols_are_normalised_retried_after_retry_after_and_all_stored(server, waits):
    server.script("tiingo", "MSFT", "throttle:2", "throttle:2")
    server.script("tiingo", "NVDA", "throttle:2", "throttle:2")

    run = ingest_bars(provider="tiingo", symbols=["AAPL", "MSFT ", " nvda"], start=dt.date(2021, 4, 15),
                      end=dt.date(2021, 4, 21))

    # Normalised before any request; MSFT and NVDA asked three times each (two 429s, then 200).
    assert server.symbols_asked("tiingo") == ["AAPL", "MSFT", "MSFT", "MSFT", "NVDA", "NVDA", "NVDA"]
    assert waits == [2, 2, 2, 2]
    # 04-15, 16, 19, 20, 21: five bars each, 15 in all.
    assert (run.status, run.rows_inserted) == (IngestRun.Status.SUCCESS, 15)
    assert closes("NVDA", "XNYS")[-1] == (dt.date(2021, 4, 21), 614.42)


def test_br14_when_retries_run_out_the_run_is_rate_limited_nothing_is_written_for_them_and_they_stay_active(
        settings, server, waits):
    ingest_bars(provider="tiingo", symbols=["MSFT", "NVDA"], start=dt.date(2021, 4, 12), end=dt.date(2021, 4, 14))
    before = dict(PriceBar.objects.values_list("id", "updated_at"))
    settings.PROVIDER_RETRIES = 1
    server.script("tiingo", "MSFT", then="throttle:2")
    server.script("tiingo", "NVDA", then="throttle:2")
    now = utc(2021, 4, 22, 1, 0)

    run = ingest_bars(provider="tiingo", symbols=["AAPL", "MSFT", "NVDA"], start=dt.date(2021, 4, 15),
                      end=dt.date(2021, 4, 21), now=now)

    assert run.status == IngestRun.Status.RATE_LIMITED
    assert run.retry_at == now + dt.timedelta(seconds=2)
    assert run.errors == [
        f"{s}: Tiingo still answered 429 Too Many Requests for {s} after 1 retries (Retry-After 2 s); "
        "nothing written, retry scheduled" for s in ("MSFT", "NVDA")]
    # MSFT and NVDA keep their three bars, untouched; AAPL came back and is stored.
    assert dict(PriceBar.objects.filter(instrument__symbol__in=["MSFT", "NVDA"]).values_list("id", "updated_at")) \
        == before
    assert len(closes("AAPL", "XNYS")) == 5
    assert set(Instrument.objects.values_list("active", flat=True)) == {True}


def test_br14_a_whole_batch_empty_at_once_is_a_provider_error_and_nothing_is_marked_delisted(
        make_bars, server, caplog):
    # Stored bars (their values do not matter here: the test is that they are left alone).
    rows = [(dt.date(2021, 4, 15), 1.0, 1.0, 1.0, 1.0, 100), (dt.date(2021, 4, 16), 1.0, 1.0, 1.0, 1.0, 100)]
    for symbol, venue in (("QQQ", "XNAS"), ("VNQ", "ARCX"), ("SHV", "XNAS")):
        make_bars(symbol, venue, rows, asset_type="etf")
        server.script("tiingo", symbol, then="blank")
    before = dict(PriceBar.objects.values_list("id", "updated_at"))

    with caplog.at_level(logging.ERROR, logger="marketdata.ingest"):
        run = ingest_bars(provider="tiingo", symbols=["QQQ", "VNQ", "SHV"], end=dt.date(2021, 4, 19))

    assert run.status == IngestRun.Status.PROVIDER_ERROR
    assert run.errors[0] == ("provider error: the whole batch came back empty at once; nothing written, "
                             "no instrument marked delisted")
    assert dict(PriceBar.objects.values_list("id", "updated_at")) == before
    assert set(Instrument.objects.values_list("active", flat=True)) == {True}
    assert "provider error, nothing written" in caplog.text
    # Each was asked only for the one session it lacks, 2021-04-19.
    assert {(h.symbol, h.params["startDate"], h.params["endDate"]) for h in server.hits if h.params} == {
        (s, "2021-04-19", "2021-04-19") for s in ("QQQ", "VNQ", "SHV")}


def test_every_symbol_failing_is_a_provider_error(server):
    server.script("tiingo", "AAPL", then="malformed")
    server.script("tiingo", "MSFT", then="malformed")

    run = ingest_bars(provider="tiingo", symbols=["AAPL", "MSFT"], start=dt.date(2021, 4, 15),
                      end=dt.date(2021, 4, 16))

    assert run.status == IngestRun.Status.PROVIDER_ERROR
    assert run.errors[0].startswith("provider error: every symbol failed")
    assert not PriceBar.objects.exists()


def test_a_second_run_fetches_nothing_and_the_next_session_alone_later(server):
    first = ingest_bars(provider="tiingo", symbols=["AAPL", "MSFT"], start=dt.date(2021, 4, 12),
                        end=dt.date(2021, 4, 16))
    asked = server.count()

    again = ingest_bars(provider="tiingo", symbols=["AAPL", "MSFT"], end=dt.date(2021, 4, 16))
    assert server.count() == asked  # up to date: no request at all
    # The 19th's New York close (16:00 EDT = 20:00 UTC) has passed at 01:00 UTC on the 20th.
    later = ingest_bars(provider="tiingo", symbols=["AAPL", "MSFT"], now=utc(2021, 4, 20, 1, 0))

    assert (first.rows_inserted, again.status, again.rows_read) == (10, IngestRun.Status.SUCCESS, 0)
    assert [(h.symbol, h.params["startDate"], h.params["endDate"]) for h in server.hits[asked:]] == [
        ("AAPL", "2021-04-19", "2021-04-19"), ("MSFT", "2021-04-19", "2021-04-19")]
    assert (later.status, later.rows_inserted) == (IngestRun.Status.SUCCESS, 2)
    assert closes("AAPL", "XNYS")[-1] == (dt.date(2021, 4, 19), 134.84)


def test_without_symbols_it_brings_every_active_instrument_of_the_exchange_up_to_date(server):
    ingest_bars(provider="yahoo", symbols=["BHP.AX", "CBA.AX"], start=dt.date(2024, 3, 4), end=dt.date(2024, 3, 6))
    Instrument.objects.filter(symbol="CBA").update(active=False)  # delisted on evidence: not fetched
    asked = server.count()

    # 2024-03-08 06:00 UTC is 17:00 AEDT, after the ASX close at 16:00: the 7th and 8th are due.
    run = ingest_bars(provider="yahoo", exchange="XASX", now=utc(2024, 3, 8, 6, 0))

    assert server.symbols_asked("yahoo")[asked:] == ["BHP.AX"]
    assert run.status == IngestRun.Status.SUCCESS
    # Dated by the Sydney session, though Yahoo stamped them 23:00 UTC the day before.
    assert closes("BHP", "XASX")[-2:] == [(dt.date(2024, 3, 7), 43.86), (dt.date(2024, 3, 8), 43.95)]
    assert Instrument.objects.get(symbol="BHP").currency == "AUD"


def test_full_backfills_from_start_and_changes_nothing_already_stored(server):
    ingest_bars(provider="stooq", symbols=["AAPL"], start=dt.date(2021, 4, 12), end=dt.date(2021, 4, 16))

    run = ingest_bars(provider="stooq", symbols=["AAPL"], start=dt.date(2021, 4, 12), end=dt.date(2021, 4, 16),
                      full=True)

    assert (run.rows_read, run.rows_inserted, run.rows_unchanged) == (5, 0, 5)
    assert server.hits[-1].params["d1"] == "20210412"


def test_missing_sessions_in_an_answer_make_the_run_partial_and_are_named(server):
    server.script("stooq", "aapl.us", "partial")

    run = ingest_bars(provider="stooq", symbols=["AAPL"], start=dt.date(2021, 4, 12), end=dt.date(2021, 4, 16))

    assert run.status == IngestRun.Status.PARTIAL
    assert run.errors == ["AAPL: 1 of 5 sessions missing from the answer (2021-04-12)"]
    assert run.rows_inserted == 4


def test_provider_actions_are_stored_with_the_bars(server):
    ingest_bars(provider="tiingo", symbols=["AAPL"], start=dt.date(2020, 8, 27), end=dt.date(2020, 9, 2))

    split = CorporateAction.objects.get(instrument__symbol="AAPL")
    assert (split.kind, split.ex_date, split.ratio, split.source) == ("split", dt.date(2020, 8, 31), 4.0, "tiingo")


def test_an_ambiguous_bare_symbol_is_named_and_the_others_still_load(make_bars, server):
    row = [(dt.date(2021, 4, 9), 1.0, 1.0, 1.0, 1.0, 1)]
    make_bars("AAPL", "XNAS", row)
    make_bars("AAPL", "XNYS", row)

    run = ingest_bars(provider="tiingo", symbols=["AAPL", "MSFT"], start=dt.date(2021, 4, 12),
                      end=dt.date(2021, 4, 12))

    assert run.status == IngestRun.Status.PARTIAL
    assert run.errors == ["AAPL: listed on XNAS, XNYS; say which, e.g. XNAS:AAPL"]
    assert server.symbols_asked("tiingo") == ["MSFT"]


def test_a_new_symbol_without_a_start_is_named_not_fetched(server):
    run = ingest_bars(provider="tiingo", symbols=["AAPL"], end=dt.date(2021, 4, 16))

    assert run.errors == ["AAPL: no bars stored yet; give a start date to backfill from"]
    assert server.count() == 0


def test_an_unknown_universe_fails_the_run_naming_it():
    with pytest.raises(IngestError, match="unknown universe 'NOPE'"):
        ingest_bars(provider="tiingo", universe="NOPE", end=dt.date(2021, 4, 16))

    assert IngestRun.objects.get().status == IngestRun.Status.FAILED


def test_tiingo_without_a_token_fails_the_run_naming_the_setting(settings):
    settings.TIINGO_API_KEY = ""

    with pytest.raises(IngestError, match="TIINGO_API_KEY"):
        ingest_bars(provider="tiingo", symbols=["AAPL"], start=dt.date(2021, 4, 12), end=dt.date(2021, 4, 16))


def test_the_command_fetches_from_a_provider_and_reports_the_run(server, capsys):
    call_command("ingest", "--provider", "yahoo", "--symbols", "bhp.ax", "--start", "2024-03-04",
                 "--end", "2024-03-08")

    out = capsys.readouterr().out
    assert "yahoo: 1 symbol, 5 rows read" in out and "5 inserted" in out and "success" in out


def test_the_command_exits_non_zero_on_a_provider_error(server):
    server.script("stooq", "aapl.us", then="error")
    server.script("stooq", "msft.us", then="error")

    with pytest.raises(CommandError, match="provider error, nothing written"):
        call_command("ingest", "--provider", "stooq", "--symbols", "AAPL,MSFT", "--start", "2021-04-12",
                     "--end", "2021-04-16")


def test_the_command_refuses_a_path_for_an_http_provider():
    with pytest.raises(CommandError, match="takes no --path"):
        call_command("ingest", "--provider", "tiingo", "--path", "x.csv", "--symbols", "AAPL")
