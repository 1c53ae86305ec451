"""Real data for the strategies app: a slice of the S&P 500 file ingested, its panels written, and the real
S&P 500 membership intervals of those tickers (AAL joined 2015-03-23, UAL 2015-09-03, HCA 2015-01-27;
TSLA only on 2020-12-21, so never a member here)."""
import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import MARKETDATA

SP500 = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"
INTERVALS = MARKETDATA / "us" / "sp500_membership_intervals.csv"
TICKERS = ["AAPL", "MSFT", "JNJ", "NVDA", "AAL", "UAL", "HCA", "TSLA"]
START, END = dt.date(2013, 1, 2), dt.date(2016, 12, 30)


@pytest.fixture(autouse=True)
def local_storage(settings, tmp_path):
    """A fresh marketdata storage (panels and backtest artifacts) per test."""
    config = settings.STORAGES["marketdata"]
    settings.STORAGES = {**settings.STORAGES, "marketdata": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {**config.get("OPTIONS", {}), "location": str(tmp_path / "marketdata"), "allow_overwrite": True},
    }}
    return tmp_path / "marketdata"


@pytest.fixture(scope="session")
def desk_files(tmp_path_factory):
    """The slice as a Parquet file (raw OHLCV and the vendor's adjusted close) and its membership CSV."""
    if not SP500.exists():
        pytest.skip(f"{SP500} is not here")
    folder = tmp_path_factory.mktemp("desk")
    table = pq.read_table(SP500, filters=[("ticker", "in", TICKERS), ("date", ">=", START), ("date", "<=", END)],
                          columns=["ticker", "date", "open", "high", "low", "close", "adjusted_close", "volume"])
    bars = folder / "slice.parquet"
    pq.write_table(pa.Table.from_pandas(table.to_pandas(), preserve_index=False), bars)
    intervals = pd.read_csv(INTERVALS, dtype=str, keep_default_na=False)
    members = folder / "intervals.csv"
    intervals[intervals["ticker"].isin(TICKERS)].to_csv(members, index=False)
    return {"bars": bars, "members": members}


@pytest.fixture
def desk(db, desk_files):
    """The slice ingested (the ingest command's code path), SP500 memberships imported, panels written."""
    from marketdata.panels import refresh_panels
    from marketdata.services import ingest_bars
    from marketdata.universes import import_memberships

    ingest_bars(provider="parquet", path=desk_files["bars"])
    import_memberships(code="SP500", path=desk_files["members"])
    refresh_panels()
    return desk_files


def adjusted_closes(desk_files):
    """The vendor's adjusted closes of the slice as a dates x 'XNYS:TICKER' panel, straight from the file."""
    frame = pd.read_parquet(desk_files["bars"])
    frame["date"] = pd.to_datetime(frame["date"])
    panel = frame.pivot(index="date", columns="ticker", values="adjusted_close")
    panel.columns = [f"XNYS:{c}" for c in panel.columns]
    return panel.sort_index(axis=1)
