"""Stooq daily CSV: US listings (aapl.us), indices (^spx) and FX pairs (audusd); Stooq has no ASX.

    GET {base}/q/d/l/?s={symbol}&i=d&d1=YYYYMMDD&d2=YYYYMMDD

The answer is CSV with the header Date,Open,High,Low,Close,Volume (Volume absent for some indices and
FX) and dates as YYYY-MM-DD; a symbol Stooq does not know, or a window without bars, is the body
"No data". Stooq serves one series, already adjusted by Stooq for splits, with no separate adjusted
close or actions: bars are stored as served with adj_factor 1.0 (prefer Tiingo or Yahoo for history).
Past its daily quota Stooq answers 200 with "Exceeded the daily hits limit", which is throttling.
"""
import io

import numpy as np
import pandas as pd

from . import symbols
from .base import NoData, Provider, ProviderError, RateLimited, empty_actions, numbers

HEADER = ["Date", "Open", "High", "Low", "Close"]


class StooqProvider(Provider):
    name = "stooq"
    label = "Stooq"

    def provider_symbol(self, request):
        return symbols.stooq(request)

    def fetch_one(self, request, start, end):
        symbol = self.provider_symbol(request)
        response = self.get(f"{self.base_url}/q/d/l/", symbol=symbol, params={
            "s": symbol, "i": "d", "d1": start.strftime("%Y%m%d"), "d2": end.strftime("%Y%m%d")})
        if response.status_code >= 400:
            raise ProviderError(f"Stooq answered HTTP {response.status_code} for {symbol}")
        text = response.text.strip()
        if not text or text.lower().startswith("no data"):
            raise NoData(f"no data in range {start}..{end}")
        if "exceeded the daily hits limit" in text.lower():
            raise RateLimited(f"Stooq's daily hits limit is exhausted (asked for {symbol})")
        try:
            raw = pd.read_csv(io.StringIO(text), dtype=str)
        except (pd.errors.ParserError, ValueError) as exc:
            raise ProviderError(f"malformed CSV from Stooq for {symbol}: {exc}") from None
        missing = [column for column in HEADER if column not in raw.columns]
        if missing:
            raise ProviderError(f"malformed CSV from Stooq for {symbol}: no column {missing[0]!r} "
                                f"(found {', '.join(map(str, raw.columns))})")
        dates = pd.to_datetime(raw["Date"], format="%Y-%m-%d", errors="coerce")
        if dates.isna().any():
            row = int(np.flatnonzero(dates.isna().to_numpy())[0])
            raise ProviderError(f"malformed CSV from Stooq for {symbol}: row {row + 2}, column \"Date\": "
                                f"{raw['Date'].iat[row]!r} is not a date")
        values = {c.lower(): numbers(raw[c].tolist(), c, "Stooq", symbol) for c in HEADER[1:]}
        volume = (numbers(raw["Volume"].tolist(), "Volume", "Stooq", symbol) if "Volume" in raw.columns
                  else np.full(len(raw), np.nan))
        bars = pd.DataFrame({"date": dates.to_numpy(dtype="datetime64[s]"), **values, "volume": volume,
                             "adj_factor": np.ones(len(raw))})
        first, last = np.datetime64(start, "s"), np.datetime64(end, "s")
        bars = bars[(bars["date"] >= first) & (bars["date"] <= last)].reset_index(drop=True)
        return bars, empty_actions()
