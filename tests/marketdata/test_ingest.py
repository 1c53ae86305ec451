"""ingest_bars / store_bars: real sample and file data in, PriceBar rows and an IngestRun out."""
import datetime as dt

import pytest

from marketdata.errors import IngestError
from marketdata.models import Instrument, IngestRun, PriceBar
from marketdata.services import ingest_bars
from quant.quality import MISSING_CLOSE, NOT_A_SESSION, OHLC_INCONSISTENT, ZERO_PRICE
from tests.conftest import MARKETDATA

pytestmark = pytest.mark.django_db

SP500 = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"
ASX = MARKETDATA / "asx" / "asx_daily_top300_2010_2024.parquet"
ASX_INDICES = MARKETDATA / "asx" / "asx_indices_daily_2010_2024.parquet"
HEADER = "symbol,date,open,high,low,close,volume\n"


@pytest.fixture
def write_csv(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def bar(symbol, day, exchange="XNYS"):
    return PriceBar.objects.get(instrument__symbol=symbol, instrument__exchange=exchange, date=day)


def test_it_loads_the_bokeh_sample_with_exchanges_names_and_adj_factor():
    run = ingest_bars(provider="sample")

    # AAPL 3270 + IBM 3270 + MSFT 3270 + GOOG 2148 + FB 196 = 12,154 bars, all new.
    assert (run.status, run.rows_read, run.rows_inserted, run.symbols) == ("success", 12_154, 12_154, 5)
    assert run.finished_at is not None
    listed = {i.symbol: (i.exchange, i.currency) for i in Instrument.objects.all()}
    assert listed == {"AAPL": ("XNAS", "USD"), "GOOG": ("XNAS", "USD"), "MSFT": ("XNAS", "USD"),
                      "FB": ("XNAS", "USD"), "IBM": ("XNYS", "USD")}
    assert Instrument.objects.get(symbol="AAPL").name == "Apple Inc."
    assert PriceBar.objects.filter(instrument__symbol="FB").count() == 196
    first = bar("AAPL", dt.date(2000, 3, 1), "XNAS")
    # Raw OHLCV as shipped; adj factor = Adj Close / Close = 4.186663 / 130.31.
    assert (first.open, first.high, first.low, first.close, first.volume) == (118.56, 132.06, 118.50, 130.31, 9_616_100)
    assert first.adj_factor == pytest.approx(4.186663 / 130.31)
    assert first.adj_close == pytest.approx(4.186663)


def test_a_second_run_changes_nothing_and_keeps_updated_at():
    ingest_bars(provider="sample")
    before = dict(PriceBar.objects.values_list("id", "updated_at"))

    again = ingest_bars(provider="sample")

    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 12_154)
    assert dict(PriceBar.objects.values_list("id", "updated_at")) == before
    assert PriceBar.objects.count() == 12_154


def test_a_file_that_says_no_venue_lands_on_the_existing_us_listing():
    # The sample puts Apple on Nasdaq; the S&P file names no venue (read as XNYS). One Apple, not two.
    ingest_bars(provider="sample")
    run = ingest_bars(provider="parquet", path=SP500, symbols=["AAPL", "NVDA"],
                      start=dt.date(2021, 3, 1), end=dt.date(2021, 3, 5))
    assert run.rows_inserted == 10
    assert sorted(Instrument.objects.filter(symbol__in=["AAPL", "NVDA"]).values_list("symbol", "exchange")) == [
        ("AAPL", "XNAS"), ("NVDA", "XNYS")]
    assert PriceBar.objects.filter(instrument__symbol="AAPL", date__year=2021).count() == 5


def test_two_sources_that_agree_on_a_bar_leave_it_unchanged():
    # The same bar from another source is not an update: a re-run of either reports it unchanged.
    import pandas as pd

    from marketdata.services import store_bars

    bars = pd.DataFrame({"symbol": ["IBM"], "exchange": ["XNYS"], "currency": ["USD"], "name": [""],
                         "date": pd.to_datetime(["2024-03-08"]).astype("datetime64[s]"), "open": [196.0],
                         "high": [197.0], "low": [195.0], "close": [196.5], "volume": [100.0], "adj_factor": [1.0]})
    store_bars(bars=bars, source="sample")
    again = store_bars(bars=bars, source="parquet")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1)
    assert PriceBar.objects.get().source == "sample"  # the first source that sent it stays on record


def test_br07_a_zero_close_is_stored_null_flagged_and_quarantined(write_csv):
    """BR-07: closes 10.00, 10.20, 0.00, 10.10, 10.30; the 0.00 is missing, never a price."""
    path = write_csv("br07.csv", HEADER + "".join(
        f"ZED,2024-03-{day:02d},{c},{c},{c},{c},1000\n"
        for day, c in [(4, "10.00"), (5, "10.20"), (6, "0.00"), (7, "10.10"), (8, "10.30")]
    ))

    run = ingest_bars(provider="csv", path=path)

    zero = bar("ZED", dt.date(2024, 3, 6))
    assert (zero.open, zero.high, zero.low, zero.close) == (None, None, None, None)
    assert zero.flags == ZERO_PRICE | MISSING_CLOSE
    assert zero.quarantined
    assert run.rows_flagged == 1
    closes = list(PriceBar.objects.clean().order_by("date").values_list("close", flat=True))
    assert closes == [10.00, 10.20, 10.10, 10.30]


def test_br10a_fund_nav_rows_with_repeated_values_are_all_stored(write_csv):
    """BR-10a: APHMX NAV repeats (60.52 on 06-29 and 07-02, 60.19 on 07-01 and 07-08): 8 rows, not 6."""
    navs = [("06-28", 60.35), ("06-29", 60.52), ("06-30", 60.41), ("07-01", 60.19), ("07-02", 60.52),
            ("07-06", 60.33), ("07-07", 60.27), ("07-08", 60.19)]
    path = write_csv("aphmx.csv", HEADER + "".join(f"APHMX,2021-{d},{v},{v},{v},{v},\n" for d, v in navs))

    run = ingest_bars(provider="csv", path=path, asset_type="fund")

    assert run.rows_inserted == 8
    assert PriceBar.objects.filter(instrument__symbol="APHMX").count() == 8
    assert Instrument.objects.get(symbol="APHMX").asset_type == "fund"
    # No volume given for a fund: stored as missing, not zero.
    assert set(PriceBar.objects.values_list("volume", flat=True)) == {None}


def test_br10b_a_duplicate_date_keeps_the_last_row_received(write_csv):
    """BR-10b: AMZN 2019-01-25 arrives twice (volume 4,959,679 then 4,945,900): one row, the last."""
    path = write_csv("amzn.csv", HEADER
                     + "AMZN,2019-01-24,1640.00,1657.55,1625.75,1654.93,4089900\n"
                     + "AMZN,2019-01-25,1670.50,1683.48,1661.61,1670.57,4959679\n"
                     + "AMZN,2019-01-25,1670.50,1683.48,1661.61,1670.57,4945900\n")

    run = ingest_bars(provider="csv", path=path)
    again = ingest_bars(provider="csv", path=path)

    assert bar("AMZN", dt.date(2019, 1, 25)).volume == 4_945_900
    assert PriceBar.objects.filter(instrument__symbol="AMZN").count() == 2
    # 3 rows read, one duplicate dropped: 2 inserted, then 2 unchanged on the re-run.
    assert (run.rows_read, run.rows_inserted, run.result.duplicates) == (3, 2, 1)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 2)


def test_br32_a_corrected_bar_replaces_the_row_and_a_rerun_is_a_no_op(write_csv):
    """BR-32: AAPL 2024-03-08 close 100 volume 1,000, then a correction to 1,050: one row holding 1,050."""
    first = write_csv("task1.csv", HEADER + "AAPL,2024-03-08,100,100,100,100.00,1000\n")
    second = write_csv("task2.csv", HEADER + "AAPL,2024-03-08,100,100,100,100.00,1050\n")

    one = ingest_bars(provider="csv", path=first, exchange="XNAS")
    stamped = bar("AAPL", dt.date(2024, 3, 8), "XNAS").updated_at
    two = ingest_bars(provider="csv", path=second, exchange="XNAS")
    corrected = bar("AAPL", dt.date(2024, 3, 8), "XNAS")
    three = ingest_bars(provider="csv", path=second, exchange="XNAS")

    assert PriceBar.objects.count() == 1
    assert corrected.volume == 1_050
    assert corrected.updated_at > stamped
    assert (one.rows_inserted, two.rows_updated, three.rows_unchanged) == (1, 1, 1)
    assert bar("AAPL", dt.date(2024, 3, 8), "XNAS").updated_at == corrected.updated_at


def test_it_flags_the_real_asx_defects():
    """ANZ 2022-07-18 came with open = high = low = 0; GMA and HUB have rows on Saturday 2018-03-17."""
    run = ingest_bars(provider="parquet", path=ASX, exchange="XASX", symbols=["ANZ", "GMA", "HUB"],
                      start=dt.date(2018, 3, 1), end=dt.date(2022, 7, 31))

    anz = bar("ANZ", dt.date(2022, 7, 18), "XASX")
    assert (anz.open, anz.high, anz.low, anz.close, anz.volume) == (None, None, None, 21.64, 4000)
    assert anz.flags == ZERO_PRICE
    assert not anz.quarantined
    for symbol in ("GMA", "HUB"):
        saturday = bar(symbol, dt.date(2018, 3, 17), "XASX")
        assert saturday.flags & NOT_A_SESSION
        assert saturday.quarantined
    assert Instrument.objects.get(symbol="ANZ").currency == "AUD"
    assert run.rows_flagged == PriceBar.objects.flagged().count() >= 3


def test_it_loads_an_sp500_slice_with_the_split_in_the_adjustment_factor():
    run = ingest_bars(provider="parquet", path=SP500, symbols=["aapl", "MSFT"],
                      start=dt.date(2014, 6, 2), end=dt.date(2014, 6, 13))

    # Two weeks of NYSE sessions (06-02..06 and 06-09..13) for each of two symbols.
    assert (run.rows_read, run.rows_inserted, run.symbols) == (20, 20, 2)
    before, after = bar("AAPL", dt.date(2014, 6, 6)), bar("AAPL", dt.date(2014, 6, 9))
    assert (before.close, after.close) == (645.57, 93.70)
    # AAPL split 7:1 on 2014-06-09 (the file's split_coefficient 7.000007, snapped to 7): the factor
    # jumps by 7, so adjusted closes stay continuous. The factors come from the actions in the slice
    # (marketdata.adjustments), so the last bar is the base: 645.57 / 7 = 92.2242857.
    assert (before.adj_factor, after.adj_factor) == (pytest.approx(1 / 7, rel=1e-15), 1.0)
    assert before.adj_close == pytest.approx(92.2242857143)


def test_it_loads_indices_as_index_instruments():
    ingest_bars(provider="parquet", path=ASX_INDICES, exchange="XASX", asset_type="index", symbols=["XJO"],
                end=dt.date(2010, 1, 8))

    xjo = Instrument.objects.get(symbol="XJO")
    assert (xjo.exchange, xjo.currency, xjo.asset_type) == ("XASX", "AUD", "index")
    assert list(PriceBar.objects.order_by("date").values_list("close", flat=True)) == [
        4876.3, 4924.3, 4925.9, 4899.4, 4912.1]


def test_it_accepts_header_aliases_and_per_row_exchange_and_currency(write_csv):
    path = write_csv("mixed.csv", "Ticker,Date,Open,High,Low,Close,Volume,Adj Close,Exchange,Currency,Name\n"
                     "bhp,2024-03-08,45.10,45.50,44.90,45.20,100,22.60,XASX,,BHP Group\n"
                     "BHP,2024-03-08,60.00,61.00,59.50,60.50,200,60.50,XNYS,,BHP Group ADR\n")

    ingest_bars(provider="csv", path=path)

    asx, nyse = bar("BHP", dt.date(2024, 3, 8), "XASX"), bar("BHP", dt.date(2024, 3, 8), "XNYS")
    assert asx.adj_factor == pytest.approx(0.5)  # 22.60 / 45.20
    assert (asx.instrument.currency, nyse.instrument.currency) == ("AUD", "USD")
    assert nyse.instrument.name == "BHP Group ADR"


@pytest.mark.parametrize("text, message", [
    (HEADER + "AAA,2024-03-08,1,1,1,1,10\nAAA,2024-03-11,1,1,1,abc,10\n",
     "bad.csv: row 3, column \"close\": 'abc' is not a number"),
    ("symbol,date,open\nAAA,2024-03-08,1\n",
     'bad.csv: missing column "close" (columns found: "symbol", "date", "open")'),
    (HEADER + "AAA,08/03/2024,1,1,1,1,10\n",
     "bad.csv: row 2, column \"date\": '08/03/2024' is not a date (expected YYYY-MM-DD)"),
    ("symbol,date,close,exchange\nAAA,2024-03-08,1,XNYS\nBBB,2024-03-08,1,NYSEX\n",
     "bad.csv: row 3, column \"exchange\": 'NYSEX' is not a known exchange "
     "(known: XASX, XNYS, XNAS, ARCX, BATS, FX)"),
    ("Ticker,symbol,date,close\nA,A,2024-03-08,1\n", 'bad.csv: columns "Ticker" and "symbol" both mean symbol'),
    (HEADER + ",2024-03-08,1,1,1,1,10\n", 'bad.csv: row 2, column "symbol": missing'),
    (HEADER + "AAA,2024-03-08,1,1,1,1,10.5\n", "bad.csv: row 2, column \"volume\": '10.5' is not a whole number of shares"),
])
def test_it_rejects_a_bad_file_naming_row_and_column_and_writes_nothing(write_csv, text, message):
    ingest_bars(provider="sample")
    bars, instruments = PriceBar.objects.count(), Instrument.objects.count()

    with pytest.raises(IngestError) as caught:
        ingest_bars(provider="csv", path=write_csv("bad.csv", text))

    assert str(caught.value) == message
    assert (PriceBar.objects.count(), Instrument.objects.count()) == (bars, instruments)
    failed = IngestRun.objects.filter(provider="csv").get()
    assert (failed.status, failed.errors) == ("failed", [message])
    assert failed.finished_at is not None


def test_it_rejects_a_missing_file(tmp_path):
    with pytest.raises(IngestError, match="nope.parquet: no such file"):
        ingest_bars(provider="parquet", path=tmp_path / "nope.parquet")
    assert IngestRun.objects.get().status == "failed"


def test_a_requested_symbol_without_rows_makes_the_run_partial():
    run = ingest_bars(provider="parquet", path=SP500, symbols=["MSFT", "ZZZZ"],
                      start=dt.date(2021, 3, 1), end=dt.date(2021, 3, 5))

    # MSFT: 5 sessions (2021-03-01..05); ZZZZ is not in the file.
    assert (run.status, run.rows_inserted) == ("partial", 5)
    assert run.errors == [f"ZZZZ: no rows in {SP500} between 2021-03-01 and 2021-03-05"]


@pytest.mark.django_db(transaction=True)
def test_br32_concurrent_upserts_of_the_same_bar_both_succeed(write_csv):
    """BR-32: two ingests of AAPL 2024-03-08 at once (volume 1,000 and 1,050) leave exactly one row."""
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    paths = {v: write_csv(f"task{v}.csv", HEADER + f"AAPL,2024-03-08,100,100,100,100.00,{v}\n") for v in (1000, 1050)}
    start, runs = threading.Barrier(2), {}

    def task(volume):
        try:
            start.wait()
            runs[volume] = ingest_bars(provider="csv", path=paths[volume], exchange="XNAS")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=task, args=(v,)) for v in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [runs[v].status for v in paths] == ["success", "success"]
    assert Instrument.objects.count() == 1
    # One row, holding the whole bar of the task that committed last: the upsert of the second waited
    # for the first to commit, then found the row and updated it; the first inserted it.
    [(first, _), (last, _)] = sorted(((v, run.rows_updated) for v, run in runs.items()), key=lambda item: item[1])
    assert (runs[first].rows_inserted, runs[last].rows_updated) == (1, 1)
    assert PriceBar.objects.get().volume == last
    # Re-running either task changes nothing but the values to its own: still one row.
    ingest_bars(provider="csv", path=paths[1000], exchange="XNAS")
    assert PriceBar.objects.get().volume == 1000
    assert PriceBar.objects.count() == 1


def _foreign_keys_and_indexes(table):
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return sorted((name, bool(c["foreign_key"]), c["unique"]) for name, c in constraints.items()
                  if c["foreign_key"] or c["index"])


def test_a_bulk_load_rebuilds_its_foreign_key_and_indexes_and_stays_idempotent(monkeypatch):
    from django.db import connection

    from marketdata import bulk

    if connection.vendor != "postgresql":
        pytest.skip("the drop-and-rebuild path is PostgreSQL's")
    before = _foreign_keys_and_indexes(PriceBar._meta.db_table)
    monkeypatch.setattr(bulk, "BULK_ROWS", 1_000)  # the 12,154 sample rows take the backfill path

    first, again = ingest_bars(provider="sample"), ingest_bars(provider="sample")

    assert (first.rows_inserted, again.rows_unchanged) == (12_154, 12_154)
    assert _foreign_keys_and_indexes(PriceBar._meta.db_table) == before
    assert any(is_fk for _, is_fk, _ in before) and any(name == "pricebar_date_idx" for name, _, _ in before)
    # The rebuilt foreign key still guards the table: a bar of no instrument is refused.
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"UPDATE {PriceBar._meta.db_table} SET instrument_id = -1 WHERE id = (SELECT min(id) FROM "
                           f"{PriceBar._meta.db_table})")
