"""Tiingo end-of-day prices (US listings): raw OHLCV, adjusted close, dividends and splits per day.

    GET {base}/tiingo/daily/{ticker}/prices?startDate=YYYY-MM-DD&endDate=YYYY-MM-DD&format=json
    GET {base}/tiingo/daily/{ticker}                       (metadata: name, exchangeCode, startDate, endDate)
    Authorization: Token <TIINGO_API_KEY>

A price row is {"date": "2018-05-15T00:00:00.000Z", "open", "high", "low", "close", "volume",
"adjOpen", "adjHigh", "adjLow", "adjClose", "adjVolume", "divCash", "splitFactor"}; the date is the
session's calendar day (written as UTC midnight). An unknown ticker is a 404 with {"detail": ...}; a
ticker without prices in the window is 200 with [].
"""
import numpy as np
import pandas as pd

from . import symbols
from .base import NoData, Provider, ProviderError, actions_frame, numbers

PRICE_FIELDS = ("open", "high", "low", "close", "volume", "adjClose", "divCash", "splitFactor")


class TiingoProvider(Provider):
    name = "tiingo"
    label = "Tiingo"

    def __init__(self, *, token, **kwargs):
        super().__init__(**kwargs)
        self.session.headers["Authorization"] = f"Token {token}"
        self.session.headers["Content-Type"] = "application/json"

    def provider_symbol(self, request):
        return symbols.tiingo(request)

    def metadata(self, request):
        """Tiingo's description of the ticker: {ticker, name, exchangeCode, startDate, endDate, ...}."""
        ticker = self.provider_symbol(request)
        response = self.get(f"{self.base_url}/tiingo/daily/{ticker}", symbol=ticker)
        self._refused(response, ticker)
        return self.json(response, ticker)

    def fetch_one(self, request, start, end):
        ticker = self.provider_symbol(request)
        response = self.get(f"{self.base_url}/tiingo/daily/{ticker}/prices", symbol=ticker, params={
            "startDate": start.isoformat(), "endDate": end.isoformat(), "format": "json"})
        self._refused(response, ticker)
        rows = self.json(response, ticker) if response.content.strip() else []
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ProviderError(f"malformed answer from Tiingo for {ticker}: expected a list of price rows")
        if not rows:
            raise NoData(f"no data in range {start}..{end}{self._listed(request)}")
        missing = [f for f in ("date", "close") if any(f not in row for row in rows)]
        if missing:
            raise ProviderError(f"malformed answer from Tiingo for {ticker}: a row has no {missing[0]!r}")
        try:
            dates = np.array([str(row["date"])[:10] for row in rows], dtype="datetime64[D]")
        except ValueError:
            raise ProviderError(f"malformed answer from Tiingo for {ticker}: a date is not YYYY-MM-DD...") from None
        values = {f: numbers([row.get(f) for row in rows], f, "Tiingo", ticker) for f in PRICE_FIELDS}
        close, adjusted = values["close"], values["adjClose"]
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where((close > 0) & (adjusted > 0), adjusted / close, np.nan)
        bars = pd.DataFrame({"date": dates.astype("datetime64[s]"), "open": values["open"],
                             "high": values["high"], "low": values["low"], "close": close,
                             "volume": values["volume"], "adj_factor": factor})
        return bars, _actions(bars["date"].to_numpy(), values["divCash"], values["splitFactor"])

    def _refused(self, response, ticker):
        if response.status_code == 401 or response.status_code == 403:
            raise ProviderError(f"Tiingo refused the token (HTTP {response.status_code}); check TIINGO_API_KEY")
        if response.status_code == 404:
            raise ProviderError(f"Tiingo does not know the ticker {ticker} (HTTP 404: {_detail(response)})")
        if response.status_code >= 400:
            raise ProviderError(f"Tiingo answered HTTP {response.status_code} for {ticker}: {_detail(response)}")

    def _listed(self, request):
        """'; Tiingo lists it from A to B' as evidence for the message, or '' when that cannot be had."""
        try:
            meta = self.metadata(request)
        except Exception:  # the message is a courtesy; the outcome stays "no data" either way
            return ""
        if not isinstance(meta, dict):
            return ""
        first, last = (str(meta.get(k) or "")[:10] for k in ("startDate", "endDate"))
        return f"; Tiingo lists it from {first} to {last}" if first or last else ""


def _actions(dates, dividends, splits):
    dividend = np.nan_to_num(dividends) > 0
    split = ~np.isnan(splits) & (splits > 0) & (splits != 1.0)
    if not dividend.any() and not split.any():
        return None
    kinds = ["dividend"] * int(dividend.sum()) + ["split"] * int(split.sum())
    return actions_frame(kinds, np.concatenate([dates[dividend], dates[split]]),
                         np.concatenate([np.full(int(dividend.sum()), np.nan), splits[split]]),
                         np.concatenate([dividends[dividend], np.full(int(split.sum()), np.nan)]))


def _detail(response):
    try:
        return str(response.json().get("detail", ""))[:200]
    except Exception:
        return response.text[:200]
