"""Parquet panels: the exact Arrow schema, refreshes that rewrite only what changed, the one loader for quant,
and objects replaced in place on a local folder and on S3 (moto on loopback, real HTTP)."""
import datetime as dt
import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.utils import timezone

from marketdata import calendars
from marketdata.models import Instrument, PriceBar
from marketdata.panels import (
    PanelError, PanelsMissing, PanelsStale, SCHEMA, bars_table, load_bars, load_panel, load_panels, manifest_key,
    panel_key, refresh_panels, write_table,
)
from marketdata.services import ingest_bars
from quant.quality import SYMBOL_REUSED
from tests.conftest import MARKETDATA

pytestmark = pytest.mark.django_db

SP500 = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"
KEY_2020, KEY_2021 = panel_key("XNYS", 2020), panel_key("XNYS", 2021)


@pytest.fixture(autouse=True)
def local_panels(settings, tmp_path):
    """A fresh panel folder per test, with the project's own storage options (allow_overwrite)."""
    config = settings.STORAGES["marketdata"]
    settings.STORAGES = {**settings.STORAGES, "marketdata": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {**config.get("OPTIONS", {}), "location": str(tmp_path / "panels")},
    }}
    return tmp_path / "panels"


@pytest.fixture(scope="module")
def sp500_slice(tmp_path_factory):
    """Real AlphaVantage bars of AAPL, MSFT and VTRS (listed 2020-11-16), 2020-11-12..18 and 2021-01-04..07.

    Without the dividend/split columns, so adj_factor is the vendor's adjusted_close / close.
    """
    table = pq.read_table(SP500, filters=[("ticker", "in", ["AAPL", "MSFT", "VTRS"])],
                          columns=["ticker", "date", "open", "high", "low", "close", "adjusted_close", "volume"])
    frame = table.to_pandas()
    days = pd.to_datetime(frame["date"])
    keep = days.between("2020-11-12", "2020-11-18") | days.between("2021-01-04", "2021-01-07")
    path = tmp_path_factory.mktemp("panels") / "sp500_slice.parquet"
    pq.write_table(pa.Table.from_pandas(frame[keep.to_numpy()], preserve_index=False), path)
    return path


@pytest.fixture
def ingested(sp500_slice):
    """The slice up to 2021-01-06 ingested; 2021-01-07 is left for a later session."""
    return ingest_bars(provider="parquet", path=sp500_slice, end=dt.date(2021, 1, 6))


def read(local_panels, key):
    return pq.read_table(local_panels / key)


def test_the_files_have_exactly_the_panel_schema(ingested, local_panels):
    refresh_panels()

    schema = pq.read_schema(local_panels / KEY_2020)
    assert {f.name: (str(f.type), f.nullable) for f in schema} == {
        "instrument_id": ("int64", False),
        "exchange": ("dictionary<values=string, indices=int32, ordered=0>", False),
        "symbol": ("dictionary<values=string, indices=int32, ordered=0>", False),
        "date": ("date32[day]", False),
        "open": ("double", True), "high": ("double", True), "low": ("double", True), "close": ("double", True),
        "volume": ("int64", True),
        "adj_factor": ("double", False),
        "flags": ("int32", False),
        "quarantined": ("bool", False),
        "source": ("dictionary<values=string, indices=int32, ordered=0>", False),
        "ingested_at": ("timestamp[us, tz=UTC]", False),
        "updated_at": ("timestamp[us, tz=UTC]", False),
    }
    assert schema.metadata[b"parakeet.schema"] == b"ohlcv_daily/1"
    assert pq.ParquetFile(local_panels / KEY_2020).metadata.row_group(0).column(0).compression == "ZSTD"


def test_a_file_holds_one_exchange_year_sorted_by_instrument_then_date(ingested, local_panels):
    result = refresh_panels()

    # 2020: AAPL and MSFT 5 sessions (11-12..11-18) + VTRS 3 (from 11-16) = 13; 2021: 3 x 3 = 9.
    assert result == {"written": [KEY_2020, KEY_2021], "skipped": [], "deleted": [], "rows": 22}
    table = read(local_panels, KEY_2020)
    ids = {i.symbol: i.pk for i in Instrument.objects.all()}
    order = sorted(["AAPL", "MSFT", "VTRS"], key=ids.get)
    expected = [(ids[s], d) for s in order for d in
                (["2020-11-16", "2020-11-17", "2020-11-18"] if s == "VTRS" else
                 ["2020-11-12", "2020-11-13", "2020-11-16", "2020-11-17", "2020-11-18"])]
    got = list(zip(table["instrument_id"].to_pylist(), [d.isoformat() for d in table["date"].to_pylist()]))
    assert got == expected
    manifest = json.loads((local_panels / manifest_key("XNYS")).read_text())
    assert manifest["files"]["2020"]["rows"] == 13 and manifest["files"]["2021"]["rows"] == 9
    assert manifest["instruments"] == {str(ids[s]): s for s in sorted(ids, key=ids.get)}


def test_round_trip_keeps_raw_values_and_adj_close_is_close_times_factor(ingested):
    refresh_panels()

    close = load_panel(field="close", exchange="XNYS")
    assert list(close.columns) == ["XNYS:AAPL", "XNYS:MSFT", "XNYS:VTRS"]
    assert close.index[0] == pd.Timestamp("2020-11-12") and len(close.index) == 8  # 5 + 3 sessions
    assert close.dtypes.unique().tolist() == [np.float64]
    assert close.loc["2020-11-18", "XNYS:MSFT"] == 211.08
    assert np.isnan(close.loc["2020-11-13", "XNYS:VTRS"])  # VTRS was listed on 2020-11-16
    adj = load_panel(exchange="XNYS")
    # The file's adjusted close 210.597058343 gave adj_factor = 210.597058343 / 211.08; close x factor gives it back.
    assert adj.loc["2020-11-18", "XNYS:MSFT"] == pytest.approx(210.597058343, rel=1e-12)
    assert adj.loc["2020-11-12", "XNYS:AAPL"] == pytest.approx(119.03157449, rel=1e-12)
    volume = load_panel(field="volume", symbols=["AAPL"])
    assert volume.loc["2021-01-06", "XNYS:AAPL"] == 155_087_970.0


def test_load_panels_reads_several_fields_in_one_pass_as_load_panel_would(ingested):
    refresh_panels()

    panels = load_panels(fields=["adj_close", "close", "volume", "adj_high"], symbols=["AAPL", "MSFT"],
                         start=dt.date(2020, 11, 17))
    assert list(panels) == ["adj_close", "close", "volume", "adj_high"]
    for field, panel in panels.items():
        pd.testing.assert_frame_equal(panel, load_panel(field=field, symbols=["AAPL", "MSFT"],
                                                        start=dt.date(2020, 11, 17)))
    # MSFT 2020-11-18: close 211.08, adjusted 210.597058343 (the file's adjusted close).
    assert panels["close"].loc["2020-11-18", "XNYS:MSFT"] == 211.08
    assert panels["adj_close"].loc["2020-11-18", "XNYS:MSFT"] == pytest.approx(210.597058343, rel=1e-12)
    with pytest.raises(PanelError, match="unknown field 'vwap'"):
        load_panels(fields=["close", "vwap"])


def test_quarantined_bars_are_missing_unless_asked_for(ingested):
    PriceBar.objects.filter(instrument__symbol="MSFT", date=dt.date(2020, 11, 17)).update(
        quarantined=True, updated_at=timezone.now())
    refresh_panels()

    assert np.isnan(load_panel(field="close").loc["2020-11-17", "XNYS:MSFT"])
    assert load_panel(field="close", include_quarantined=True).loc["2020-11-17", "XNYS:MSFT"] == 214.46
    bars = load_bars(symbols=["XNYS:MSFT"])
    assert dt.date(2020, 11, 17) not in set(bars["date"].dt.date)
    assert len(load_bars(symbols=["XNYS:MSFT"], include_quarantined=True)) == 8


def test_a_reused_codes_earlier_company_is_left_out_of_analytics(ingested):
    # Say another company took MSFT's code on 2021-01-05 (the ingest flagged and quarantined that bar):
    # no return may span the two companies, so analytics start at the new one's first usable bar.
    PriceBar.objects.filter(instrument__symbol="MSFT", date=dt.date(2021, 1, 5)).update(
        flags=SYMBOL_REUSED, quarantined=True, updated_at=timezone.now())
    refresh_panels()

    closes = load_panel(field="close", symbols=["XNYS:MSFT", "XNYS:AAPL"])
    assert closes["XNYS:MSFT"].dropna().index.date.tolist() == [dt.date(2021, 1, 6)]
    assert closes["XNYS:AAPL"].notna().sum() == 8  # other instruments keep their history
    assert set(load_bars(symbols=["XNYS:MSFT"])["date"].dt.date) == {dt.date(2021, 1, 6)}
    # Everything is still there for whoever asks for the quarantined view.
    assert load_panel(field="close", symbols=["XNYS:MSFT"], include_quarantined=True).notna().sum().item() == 8
    # Accepting the flag (a relisting of the same company) cuts nothing.
    PriceBar.objects.filter(instrument__symbol="MSFT", date=dt.date(2021, 1, 5)).update(
        quarantined=False, updated_at=timezone.now())
    refresh_panels()
    assert load_panel(field="close", symbols=["XNYS:MSFT"]).notna().sum().item() == 8


def test_the_instrument_page_says_a_code_was_reused_and_where_analytics_start(ingested, alice_client):
    PriceBar.objects.filter(instrument__symbol="MSFT", date=dt.date(2021, 1, 5)).update(
        flags=SYMBOL_REUSED, quarantined=True)
    body = alice_client.get("/instruments/MSFT/").content.decode()
    assert "another company took over XNYS:MSFT on 2021-01-05" in body
    assert "Code reused" not in alice_client.get("/instruments/AAPL/").content.decode()


def test_load_bars_is_the_long_frame_with_adjusted_prices(ingested):
    refresh_panels()

    bars = load_bars(symbols=["AAPL", "VTRS"], start=dt.date(2020, 11, 17), end=dt.date(2021, 1, 4))
    assert list(bars.columns) == ["instrument_id", "key", "exchange", "symbol", "date", "open", "high", "low",
                                  "close", "volume", "adj_factor", "adj_open", "adj_high", "adj_low", "adj_close",
                                  "flags", "quarantined"]
    # Per instrument: 2020-11-17, 2020-11-18, 2021-01-04.
    assert bars["key"].astype(str).tolist() == ["XNYS:AAPL"] * 3 + ["XNYS:VTRS"] * 3
    assert bars["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-11-17", "2020-11-18", "2021-01-04"] * 2
    first = bars.iloc[0]
    assert (first["symbol"], first["exchange"], first["open"], first["close"], first["volume"]) == (
        "AAPL", "XNYS", 119.55, 119.39, 74_270_973.0)
    assert first["adj_close"] == pytest.approx(119.211305078, rel=1e-12)
    assert first["adj_open"] == pytest.approx(119.55 * 119.211305078 / 119.39, rel=1e-12)


def test_a_new_session_rewrites_only_its_year(ingested, sp500_slice, local_panels):
    refresh_panels()
    before_2020 = (local_panels / KEY_2020).stat().st_mtime_ns

    ingest_bars(provider="parquet", path=sp500_slice, start=dt.date(2021, 1, 7))
    result = refresh_panels()

    assert result == {"written": [KEY_2021], "skipped": [KEY_2020], "deleted": [], "rows": 12}  # 3 x 4 sessions
    assert (local_panels / KEY_2020).stat().st_mtime_ns == before_2020
    assert load_panel(field="close").loc["2021-01-07", "XNYS:MSFT"] == 218.29


def test_a_changed_old_bar_rewrites_its_year_only(ingested):
    refresh_panels()
    # What an adjustment recompute does to one old bar: a new factor and a fresh updated_at.
    PriceBar.objects.filter(instrument__symbol="AAPL", date=dt.date(2020, 11, 12)).update(
        adj_factor=0.5, updated_at=timezone.now())

    result = refresh_panels()

    assert (result["written"], result["skipped"], result["rows"]) == ([KEY_2020], [KEY_2021], 13)
    assert load_panel().loc["2020-11-12", "XNYS:AAPL"] == 119.21 * 0.5


def test_a_second_refresh_writes_nothing(ingested, local_panels):
    refresh_panels()
    stamps = {p: p.stat().st_mtime_ns for p in (local_panels / "ohlcv/daily/XNYS").iterdir()}

    result = refresh_panels()

    assert result == {"written": [], "skipped": [KEY_2020, KEY_2021], "deleted": [], "rows": 0}
    assert {p: p.stat().st_mtime_ns for p in (local_panels / "ohlcv/daily/XNYS").iterdir()} == stamps


def test_full_rewrites_everything_and_a_missing_object_is_rewritten(ingested, local_panels):
    refresh_panels()
    assert refresh_panels(full=True)["written"] == [KEY_2020, KEY_2021]

    (local_panels / KEY_2021).unlink()
    assert refresh_panels()["written"] == [KEY_2021]


def test_since_looks_only_at_its_year_and_later(ingested, sp500_slice):
    refresh_panels()
    ingest_bars(provider="parquet", path=sp500_slice, start=dt.date(2021, 1, 7))

    assert refresh_panels(since=dt.date(2021, 1, 7)) == {"written": [KEY_2021], "skipped": [], "deleted": [],
                                                        "rows": 12}


def test_a_year_whose_bars_are_gone_is_deleted(ingested, local_panels):
    refresh_panels()
    PriceBar.objects.filter(date__year=2021).delete()

    assert refresh_panels()["deleted"] == [KEY_2021]
    assert not (local_panels / KEY_2021).exists()
    assert load_panel(field="close").index[-1] == pd.Timestamp("2020-11-18")


def test_a_renamed_instrument_rewrites_every_file_holding_it(ingested):
    refresh_panels()
    Instrument.objects.filter(symbol="VTRS").update(symbol="VTRX")

    assert refresh_panels()["written"] == [KEY_2020, KEY_2021]
    assert "XNYS:VTRX" in load_panel(field="close").columns


def test_missing_and_stale_panels_are_named_errors(ingested, sp500_slice):
    with pytest.raises(PanelsMissing, match=r"XNYS: 22 bars in the database but no panels; run `manage.py panels"):
        load_panel()
    refresh_panels()
    ingest_bars(provider="parquet", path=sp500_slice, start=dt.date(2021, 1, 7))

    # 13 + 9 = 22 bars in the panels; 22 + 3 new ones (2021-01-07) in the database.
    with pytest.raises(PanelsStale, match=r"XNYS: the panels hold 22 bars .* the database 25 bars"):
        load_panel(exchange="XNYS")
    with pytest.raises(PanelsStale):
        load_bars()
    # A caller that refreshed them itself may skip the check: it then reads what the files hold.
    assert load_panel(field="close", check=False).index[-1] == pd.Timestamp("2021-01-06")


def test_a_selection_checks_only_the_exchanges_it_reads(ingested, make_bars):
    refresh_panels()
    make_bars("BHP", "XASX", [(dt.date(2024, 3, 8), 45.0, 45.5, 44.8, 45.2, 1_000)])  # XASX has no panels yet

    # Reading US names needs fresh US panels only; XASX's missing panels are named when XASX is read.
    assert list(load_panel(field="close", symbols=["AAPL"]).columns) == ["XNYS:AAPL"]
    with pytest.raises(PanelsMissing, match=r"XASX: 1 bars in the database but no panels"):
        load_panel(field="close")


def test_bad_arguments_name_the_problem(ingested):
    refresh_panels()
    with pytest.raises(PanelError, match="unknown field 'vwap'"):
        load_panel(field="vwap")
    with pytest.raises(PanelError, match="symbol 'NOPE' is not in the panels of XNYS"):
        load_panel(symbols=["NOPE"])
    with pytest.raises(PanelError, match="unknown exchange 'XNYZ'"):
        refresh_panels(exchange="XNYZ")


def test_instrument_ids_select_columns_even_without_bars_in_the_window(ingested):
    refresh_panels()
    vtrs = Instrument.objects.get(symbol="VTRS")

    panel = load_panel(field="close", instrument_ids=[vtrs.pk], end=dt.date(2020, 11, 13))

    assert list(panel.columns) == ["XNYS:VTRS"] and panel.empty  # listed 2020-11-16: no bar by 11-13


def test_the_panels_command_prints_what_it_wrote(ingested):
    out = io.StringIO()
    call_command("panels", "--exchange", "XNYS", stdout=out)
    text = out.getvalue()
    assert f"wrote {KEY_2020}" in text and f"wrote {KEY_2021}" in text
    assert "2 files written (22 rows), 0 unchanged, 0 deleted" in text

    out = io.StringIO()
    call_command("panels", stdout=out)
    assert "0 files written (0 rows), 2 unchanged, 0 deleted" in out.getvalue()


# --- BR-27: a fixed key is replaced, never copied -----------------------------------------------------------

def _aapl_2024(make_bars, through):
    """AAPL on XNYS, one bar per NYSE session of 2024 through `through`; the prices are made up (close =
    session number), only the row count matters here."""
    sessions = calendars.sessions("XNYS")
    days = sessions[(sessions >= "2024-01-01") & (sessions <= pd.Timestamp(through))]
    existing = set(PriceBar.objects.filter(instrument__symbol="AAPL").values_list("date", flat=True))
    rows = [(d.date(), n, n, n, n, 1000) for n, d in enumerate(days, 1) if d.date() not in existing]
    return make_bars("AAPL", "XNYS", rows), len(days)


def test_br27_rewriting_a_fixed_key_on_the_local_folder_keeps_one_file(make_bars, local_panels):
    key = panel_key("XNYS", 2024)
    _, sessions = _aapl_2024(make_bars, "2024-03-07")
    assert sessions == 46
    refresh_panels()
    _, sessions = _aapl_2024(make_bars, "2024-03-08")
    assert sessions == 47

    assert refresh_panels()["written"] == [key]

    assert sorted(os.listdir(local_panels / "ohlcv/daily/XNYS")) == ["2024.parquet", "_manifest.json"]
    assert read(local_panels, key).num_rows == 47
    assert load_panel(field="close").loc["2024-03-08", "XNYS:AAPL"] == 47.0


def test_br27_a_storage_that_renames_writes_is_refused(make_bars, settings, local_panels):
    settings.STORAGES = {**settings.STORAGES, "marketdata": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(local_panels)}}}
    _aapl_2024(make_bars, "2024-03-07")
    refresh_panels()
    _aapl_2024(make_bars, "2024-03-08")

    with pytest.raises(PanelError, match="saved ohlcv/daily/XNYS/2024.parquet as ohlcv/daily/XNYS/2024_.*allow_overwrite"):
        refresh_panels()
    assert sorted(os.listdir(local_panels / "ohlcv/daily/XNYS")) == ["2024.parquet", "_manifest.json"]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_panels(s3_endpoint, monkeypatch, settings_from, settings):
    """STORAGES["marketdata"] as the settings build it for a bucket, pointed at moto."""
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    config = settings_from(PARAKEET_S3_BUCKET="desk-panels", AWS_S3_ENDPOINT_URL=s3_endpoint)["STORAGES"]["marketdata"]
    settings.STORAGES = {**settings.STORAGES, "marketdata": config}
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="desk-panels")
    yield client
    for obj in client.list_objects_v2(Bucket="desk-panels").get("Contents", []):
        client.delete_object(Bucket="desk-panels", Key=obj["Key"])
    client.delete_bucket(Bucket="desk-panels")


def test_br27_rewriting_a_fixed_key_on_s3_keeps_one_object(make_bars, s3_panels):
    _aapl_2024(make_bars, "2024-03-07")
    refresh_panels()
    _aapl_2024(make_bars, "2024-03-08")

    assert refresh_panels()["written"] == ["ohlcv/daily/XNYS/2024.parquet"]

    keys = sorted(o["Key"] for o in s3_panels.list_objects_v2(Bucket="desk-panels")["Contents"])
    assert keys == ["marketdata/ohlcv/daily/XNYS/2024.parquet", "marketdata/ohlcv/daily/XNYS/_manifest.json"]
    body = s3_panels.get_object(Bucket="desk-panels", Key=keys[0])["Body"].read()
    assert pq.read_table(io.BytesIO(body)).num_rows == 47
    panel = load_panel(field="close", exchange="XNYS")  # read back through django-storages
    assert len(panel) == 47 and panel.iloc[-1, 0] == 47.0
    assert refresh_panels()["written"] == []


# --- BR-28: nanosecond timestamps and calendar dates --------------------------------------------------------

def _one_bar(ingested_at):
    return pd.DataFrame({
        "instrument_id": [1], "exchange": ["XNYS"], "symbol": ["AAPL"], "date": [pd.Timestamp("2016-02-12")],
        "open": [94.19], "high": [94.50], "low": [93.01], "close": [93.99], "volume": [40_351_400],
        "adj_factor": [1.0], "flags": [0], "quarantined": [False], "source": ["test"],
        "ingested_at": [ingested_at], "updated_at": [ingested_at],
    })


def test_br28_nanosecond_timestamps_are_written_as_microseconds(local_panels):
    moment = pd.Timestamp(1455310458115534000, unit="ns", tz="UTC")  # 2016-02-12 20:54:18.115534 UTC
    assert moment.unit == "ns"

    write_table("br28/2016.parquet", bars_table(_one_bar(moment)))

    table = pq.read_table(local_panels / "br28/2016.parquet")
    assert table.schema.field("ingested_at").type == pa.timestamp("us", tz="UTC")
    assert table["ingested_at"].cast(pa.int64()).to_pylist() == [1455310458115534]  # ns // 1000, nothing lost
    assert table.schema.field("date").type == pa.date32()
    assert table["date"].to_pylist() == [dt.date(2016, 2, 12)]


def test_br28_sub_microsecond_digits_are_cut_on_purpose():
    table = bars_table(_one_bar(pd.Timestamp(1455310458115534999, unit="ns", tz="UTC")))
    assert table["ingested_at"].cast(pa.int64()).to_pylist() == [1455310458115534]  # 999 ns dropped


def test_br28_the_bar_date_reads_back_the_same_in_any_reader_time_zone(local_panels):
    write_table("br28/2016.parquet", bars_table(_one_bar(pd.Timestamp(1455310458115534000, unit="ns", tz="UTC"))))
    script = (
        "import os, sys, time, pyarrow.parquet as pq\n"
        "for zone in ('Australia/Sydney', 'America/New_York', 'Pacific/Kiritimati', 'Pacific/Pago_Pago'):\n"
        "    os.environ['TZ'] = zone; time.tzset()\n"
        "    t = pq.read_table(sys.argv[1]); f = t.to_pandas()\n"
        "    print(zone, t['date'][0].as_py(), f['date'][0], f['ingested_at'][0].isoformat())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(local_panels / "br28/2016.parquet")],
                          capture_output=True, text=True, check=True)
    lines = done.stdout.split("\n")[:4]
    for zone, line in zip(["Australia/Sydney", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"], lines):
        assert line == f"{zone} 2016-02-12 2016-02-12 2016-02-12T20:54:18.115534+00:00"


def test_br28_a_bar_ingested_at_a_nanosecond_moment_round_trips_through_the_database(make_bars, local_panels):
    inst = make_bars("AAPL", "XNYS", [(dt.date(2016, 2, 12), 94.19, 94.50, 93.01, 93.99, 40_351_400)])
    moment = dt.datetime(2016, 2, 12, 20, 54, 18, 115534, tzinfo=dt.UTC)
    PriceBar.objects.filter(instrument=inst).update(created_at=moment)

    refresh_panels()

    table = read(local_panels, panel_key("XNYS", 2016))
    assert table["ingested_at"].to_pylist() == [moment]
    assert table["date"].to_pylist() == [dt.date(2016, 2, 12)]


def test_bars_table_refuses_dates_with_a_time_of_day():
    frame = _one_bar(pd.Timestamp("2016-02-12 20:54", tz="UTC"))
    frame["date"] = [pd.Timestamp("2016-02-12 10:00")]
    with pytest.raises(PanelError, match="column 'date': a bar date has a time of day"):
        bars_table(frame)


def test_write_table_refuses_another_schema():
    with pytest.raises(PanelError, match="does not have the panel schema"):
        write_table("x.parquet", pa.table({"date": pa.array([dt.date(2016, 2, 12)])}))
    assert SCHEMA.field("volume").type == pa.int64()
    assert storages["marketdata"].exists("x.parquet") is False
