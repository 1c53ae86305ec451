"""Scanner fixtures: a panel folder per test, real slices of ../shared/marketdata, small hand-made universes."""
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import MARKETDATA

SP500_FILE = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"
ASX_FILE = MARKETDATA / "asx" / "asx_daily_top300_2010_2024.parquet"
ASX_INDICES = MARKETDATA / "asx" / "asx_indices_daily_2010_2024.parquet"
US_TICKERS = ["AAPL", "AMZN", "CDW", "EXR", "F", "FTNT", "GE", "GLW", "GOOGL", "GPS", "HPQ", "INTC", "IRM", "JPM",
              "KIM", "KO", "MSFT", "NVDA", "PFE", "REG", "STX", "T", "TSLA", "XOM"]
ASX_TICKERS = ["ALU", "BHP", "CBA", "CSL", "FMG", "LOV", "PME", "WES", "WTC", "XRO"]
US_AS_OF = dt.date(2021, 4, 21)
ASX_AS_OF = dt.date(2024, 5, 31)


@pytest.fixture(autouse=True)
def local_panels(settings, tmp_path):
    """A fresh panel folder per test, with the project's own storage options (allow_overwrite)."""
    config = settings.STORAGES["marketdata"]
    settings.STORAGES = {**settings.STORAGES, "marketdata": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {**config.get("OPTIONS", {}), "location": str(tmp_path / "panels")},
    }}
    return tmp_path / "panels"


@pytest.fixture(scope="session")
def us_slice(tmp_path_factory):
    """Real AlphaVantage bars of 24 S&P 500 names, 2020-06-01 .. 2021-04-21, adj_factor = adjusted / close."""
    table = pq.read_table(SP500_FILE, filters=[("ticker", "in", US_TICKERS), ("date", ">=", dt.date(2020, 6, 1))],
                          columns=["ticker", "date", "open", "high", "low", "close", "adjusted_close", "volume"])
    path = tmp_path_factory.mktemp("scanner") / "sp500_slice.parquet"
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="session")
def asx_slice(tmp_path_factory):
    """Real ASX bars of 10 top-300 names and the S&P/ASX 200 index (XJO), 2023-01-03 .. 2024-05-31."""
    since = dt.date(2023, 1, 3)
    names = pq.read_table(ASX_FILE, filters=[("ticker", "in", ASX_TICKERS), ("date", ">=", since)])
    index = pq.read_table(ASX_INDICES, filters=[("ticker", "==", "XJO"), ("date", ">=", since)])
    folder = tmp_path_factory.mktemp("scanner")
    pq.write_table(names, folder / "asx_slice.parquet")
    pq.write_table(index, folder / "xjo.parquet")
    return folder / "asx_slice.parquet", folder / "xjo.parquet"


@pytest.fixture
def us_loaded(db, us_slice):
    """The US slice ingested, the real S&P 500 membership imported, the panels written."""
    from marketdata.panels import refresh_panels
    from marketdata.services import ingest_bars
    from marketdata.universes import import_memberships

    ingest_bars(provider="parquet", path=us_slice)
    import_memberships(code="SP500", path=MARKETDATA / "us" / "sp500_membership_intervals.csv",
                       changes=MARKETDATA / "us" / "sp500_changes_since_2019.csv")
    refresh_panels()


@pytest.fixture
def asx_loaded(db, asx_slice):
    """The ASX slice and XJO ingested on XASX, the ASX top-300 universe imported, the panels written."""
    from marketdata.panels import refresh_panels
    from marketdata.services import ingest_bars
    from marketdata.universes import import_memberships

    names, index = asx_slice
    ingest_bars(provider="parquet", path=names, exchange="XASX")
    ingest_bars(provider="parquet", path=index, exchange="XASX", asset_type="index")
    import_memberships(code="ASX300", path=MARKETDATA / "asx" / "asx_top300_universe.csv")
    refresh_panels()


@pytest.fixture
def universe(db, make_bars):
    """universe('TEST', {'A': closes, ...}, start=date, exchange='XNYS', volume=1e6, highs=None) -> {symbol: id}.

    Business-day bars from `start`; open = low = close and high = close unless `highs` says; a None close
    is no bar. Every name is a member of universe `code` from the first date on; then the panels are written.
    """
    from marketdata.models import IndexMembership
    from marketdata.panels import refresh_panels

    def make(code, closes, *, start=dt.date(2023, 1, 2), exchange="XNYS", volume=1e6, highs=None):
        days = pd.bdate_range(start, periods=len(next(iter(closes.values())))).date
        ids = {}
        for symbol, values in closes.items():
            top = (highs or {}).get(symbol, values)
            rows = [(d, c, h, c, c, volume) for d, c, h in zip(days, values, top) if c is not None]
            instrument = make_bars(symbol, exchange, rows)
            IndexMembership.objects.get_or_create(index_code=code, instrument=instrument, start=days[0])
            ids[symbol] = instrument.pk
        refresh_panels()
        return ids

    return make


def rising(n, start=10.0, step=0.1):
    return list(np.round(start + step * np.arange(n), 6))
