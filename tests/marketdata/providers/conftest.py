"""Real bars served by a local provider server, and a recorder for the waits providers would sleep.

The bars are slices of the real files in ../shared/marketdata (AlphaVantage S&P 500 daily, ASX top 300),
read once per session.
"""
import datetime as dt
from functools import lru_cache

import pandas as pd
import pytest

from marketdata.providers.localserver import ProviderServer
from tests.conftest import MARKETDATA

US_TICKERS = ["AAPL", "MSFT", "NVDA", "GOOGL", "BRK.B"]
EXCHANGE_OF = {"AAPL": "XNAS", "MSFT": "XNAS", "NVDA": "XNAS", "GOOGL": "XNAS", "BRK.B": "XNYS"}


@lru_cache(maxsize=1)
def us_bars():
    """AAPL, MSFT, NVDA, GOOGL (Nasdaq) and BRK.B (NYSE) from 2018-05-01: raw OHLCV, adjusted close, actions."""
    bars = pd.read_parquet(MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet",
                           filters=[("ticker", "in", US_TICKERS), ("date", ">=", dt.date(2018, 5, 1))])
    bars["exchange"] = bars["ticker"].map(EXCHANGE_OF)
    return bars


@lru_cache(maxsize=1)
def asx_bars():
    """BHP and CBA on the ASX, March 2024 (raw OHLCV, AUD)."""
    bars = pd.read_parquet(MARKETDATA / "asx" / "asx_daily_top300_2010_2024.parquet",
                           filters=[("ticker", "in", ["BHP", "CBA"]), ("date", ">=", dt.date(2024, 3, 1)),
                                    ("date", "<=", dt.date(2024, 3, 28))])
    return bars.assign(exchange="XASX")


def real(ticker, start, end):
    """One ticker's real rows in [start, end] from the slices above."""
    bars = pd.concat([us_bars(), asx_bars()], ignore_index=True)
    chosen = bars[(bars["ticker"] == ticker) & (bars["date"] >= start) & (bars["date"] <= end)]
    return chosen.sort_values("date").reset_index(drop=True)


@pytest.fixture
def server():
    with ProviderServer(pd.concat([us_bars(), asx_bars()], ignore_index=True)) as running:
        yield running


@pytest.fixture
def waits(monkeypatch):
    """Every wait a provider makes (retry backoff, Retry-After, rate limit), recorded instead of slept."""
    recorded = []
    monkeypatch.setattr("marketdata.providers.base.sleep", recorded.append)
    return recorded


@pytest.fixture
def providers_at(settings, server, waits):
    """Settings pointing every provider at the local server, unthrottled, with a Tiingo token."""
    settings.PROVIDER_URLS = server.urls
    settings.PROVIDER_RATE = 0
    settings.PROVIDER_RETRIES = 3
    settings.PROVIDER_TIMEOUT = 5.0
    settings.TIINGO_API_KEY = "test-token"
    return server
