"""`manage.py ingest` through call_command: its output, its errors and the rows it leaves."""
import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Instrument, IngestRun, PriceBar
from tests.conftest import MARKETDATA

pytestmark = pytest.mark.django_db

SP500 = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"


def ingest(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_loads_the_sample_and_reports_a_no_change_rerun():
    first, progress = ingest("--provider", "sample")
    again, _ = ingest("--provider", "sample")

    assert "sample: 5 symbols, 12,154 rows read: 12,154 inserted, 0 updated, 0 unchanged" in first
    assert "0 inserted, 0 updated, 12,154 unchanged, 0 flagged" in again
    assert progress == ""  # not a terminal: no progress bar
    assert [r.status for r in IngestRun.objects.order_by("id")] == ["success", "success"]


def test_it_loads_a_parquet_subset_between_dates():
    out, _ = ingest("--provider", "parquet", "--path", str(SP500), "--symbols", "AAPL,MSFT",
                    "--start", "2021-03-01", "--end", "2021-03-05")

    # 2 symbols x 5 sessions (2021-03-01..05).
    assert "2 symbols, 10 rows read: 10 inserted" in out
    run = IngestRun.objects.get()
    arguments = {key: value for key, value in run.params.items() if key != "quality"}  # the checks' record
    assert arguments == {"path": str(SP500), "symbols": ["AAPL", "MSFT"], "start": "2021-03-01",
                         "end": "2021-03-05"}
    assert PriceBar.objects.filter(date__gt=dt.date(2021, 3, 5)).count() == 0


def test_it_gives_csv_rows_the_chosen_exchange_and_its_currency(tmp_path):
    path = tmp_path / "asx.csv"
    path.write_text("code,date,close\nBHP,2024-03-08,45.20\n")

    ingest("--provider", "csv", "--path", str(path), "--exchange", "XASX")

    assert Instrument.objects.values_list("symbol", "exchange", "currency").get() == ("BHP", "XASX", "AUD")


def test_it_rejects_a_bad_file_with_file_row_and_column(tmp_path):
    path = tmp_path / "sp.csv"
    path.write_text("symbol,date,close\n" + "".join(f"AAA,2024-02-{d:02d},10\n" for d in range(1, 16))
                    + "AAA,2024-02-16,abc\n")

    with pytest.raises(CommandError, match="""^sp.csv: row 17, column "close": 'abc' is not a number$"""):
        ingest("--provider", "csv", "--path", str(path))

    assert PriceBar.objects.count() == 0
    assert IngestRun.objects.get().status == "failed"


def test_it_rejects_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="missing.csv: no such file"):
        ingest("--provider", "csv", "--path", str(tmp_path / "missing.csv"))


def test_it_needs_a_path_for_file_providers():
    with pytest.raises(CommandError, match="the parquet provider needs a path"):
        ingest("--provider", "parquet")


def test_it_rejects_dates_that_are_not_dates_or_out_of_order():
    with pytest.raises(CommandError, match="'2021-13-01' is not a date"):
        ingest("--provider", "sample", "--start", "2021-13-01")
    with pytest.raises(CommandError, match="--start 2021-03-05 is after --end 2021-03-01"):
        ingest("--provider", "sample", "--start", "2021-03-05", "--end", "2021-03-01")


def test_it_reports_requested_symbols_that_have_no_rows():
    out, err = ingest("--provider", "sample", "--symbols", "IBM,NOPE", "--start", "2013-02-25")

    # IBM 2013-02-25..2013-03-01: 5 sessions.
    assert "1 symbol, 5 rows read: 5 inserted" in out
    assert "run #" in out and "partial" in out
    assert "NOPE: no rows in the bokeh_sampledata stocks between 2013-02-25 and the end" in err


@pytest.fixture
def panels_folder(settings, tmp_path):
    config = settings.STORAGES["marketdata"]
    settings.STORAGES = {**settings.STORAGES, "marketdata": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {**config.get("OPTIONS", {}), "location": str(tmp_path / "panels")},
    }}
    return tmp_path / "panels"


def test_an_ingest_that_changed_bars_rewrites_the_panels_scans_and_backtests_read(panels_folder):
    from marketdata.panels import load_panel

    out, _ = ingest("--provider", "parquet", "--path", str(SP500), "--symbols", "AAPL",
                    "--start", "2021-03-01", "--end", "2021-03-05")
    assert "panels: 1 files rewritten (5 bars), 0 unchanged" in out
    assert load_panel(field="close", symbols=["AAPL"]).shape == (5, 1)
    again, _ = ingest("--provider", "parquet", "--path", str(SP500), "--symbols", "AAPL",
                      "--start", "2021-03-01", "--end", "2021-03-05")
    assert "panels:" not in again  # nothing changed, nothing to rewrite


def test_no_panels_leaves_them_alone(panels_folder):
    ingest("--provider", "parquet", "--path", str(SP500), "--symbols", "AAPL", "--start", "2021-03-01",
           "--end", "2021-03-05", "--no-panels")
    assert not (panels_folder / "ohlcv").exists()
