"""Yahoo Finance chart JSON: US and ASX listings (BHP.AX), indices (^AXJO) and FX pairs (AUDUSD=X).

    GET {base}/v8/finance/chart/{symbol}?period1=<epoch s>&period2=<epoch s>&interval=1d&events=div,splits

The answer is {"chart": {"result": [{"meta": {currency, exchangeTimezoneName, gmtoffset, ...},
"timestamp": [...], "events": {"dividends": {...}, "splits": {...}}, "indicators": {"quote": [{open,
high, low, close, volume}], "adjclose": [{adjclose}]}}], "error": null}}; an unknown symbol is a 404
whose chart.error says so; a window without bars has no "timestamp".

Two conversions make it our data. A timestamp is the UTC instant the session opened, so the bar's date
is that instant's calendar day in the exchange's own zone (an ASX bar at 2024-03-07 23:00 UTC is the
2024-03-08 Sydney session). Yahoo's OHLC, volume and dividend amounts are split-adjusted as of today,
so the splits in the answer are undone to give the raw prices as traded; the window is asked up to now
so that every later split is in the answer.
"""
import datetime as dt
import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from .. import calendars
from . import symbols
from .base import NoData, Provider, ProviderError, actions_frame, numbers

# Zones of the series without a session calendar of ours (Yahoo dates FX bars in London).
ZONES = {"FX": "Europe/London", "XTSE": "America/Toronto", "": "America/New_York"}


class YahooProvider(Provider):
    name = "yahoo"
    label = "Yahoo"

    def __init__(self, *, clock_now=time.time, **kwargs):
        super().__init__(**kwargs)
        self.clock_now = clock_now

    def provider_symbol(self, request):
        return symbols.yahoo(request)

    def fetch_one(self, request, start, end):
        symbol = self.provider_symbol(request)
        zone = _zone(request.exchange)
        period1 = _epoch(start, zone)
        period2 = max(_epoch(end + dt.timedelta(days=1), zone), int(self.clock_now()))
        response = self.get(f"{self.base_url}/v8/finance/chart/{symbol}", symbol=symbol, params={
            "period1": period1, "period2": period2, "interval": "1d", "events": "div,splits"})
        if not response.content.strip():
            if response.status_code < 400:
                raise NoData(f"no data in range {start}..{end} (empty answer)")
            raise ProviderError(f"Yahoo answered HTTP {response.status_code} for {symbol} with no body")
        chart = self.json(response, symbol)
        chart = chart.get("chart") if isinstance(chart, dict) else None
        if not isinstance(chart, dict):
            raise ProviderError(f"malformed answer from Yahoo for {symbol}: no 'chart' object")
        error = chart.get("error")
        if error:
            what = f"{error.get('code', '')}: {error.get('description', '')}" if isinstance(error, dict) else str(error)
            raise ProviderError(f"Yahoo does not know {symbol} (HTTP {response.status_code}, {what!r})")
        if response.status_code >= 400:
            raise ProviderError(f"Yahoo answered HTTP {response.status_code} for {symbol}")
        result = (chart.get("result") or [None])[0]
        if not isinstance(result, dict):
            raise ProviderError(f"malformed answer from Yahoo for {symbol}: chart.result is empty")
        stamps = result.get("timestamp") or []
        if not stamps:
            raise NoData(f"no data in range {start}..{end}")
        meta = result.get("meta") or {}
        try:
            quote = result["indicators"]["quote"][0]
            adjclose = ((result["indicators"].get("adjclose") or [{}])[0]).get("adjclose")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError(f"malformed answer from Yahoo for {symbol}: no indicators.quote") from None
        n = len(stamps)
        values = {}
        for field in ("open", "high", "low", "close", "volume"):
            column = quote.get(field)
            if column is None or len(column) != n:
                raise ProviderError(f"malformed answer from Yahoo for {symbol}: indicators.quote.{field} "
                                    f"has {0 if column is None else len(column)} values for {n} timestamps")
            values[field] = numbers(column, field, "Yahoo", symbol)
        adjusted = (numbers(adjclose, "adjclose", "Yahoo", symbol) if adjclose is not None and len(adjclose) == n
                    else values["close"])
        stamps = numbers(stamps, "timestamp", "Yahoo", symbol)
        dates = _days(stamps, meta, zone)

        events = result.get("events") or {}
        split_days, ratios = _splits(events.get("splits"), meta, zone, symbol)
        # Raw = split-adjusted x product of the ratios of the splits after the bar's day.
        later = _later_product(dates, split_days, ratios)
        close = values["close"] * later
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where((close > 0) & (adjusted > 0), adjusted / close, np.nan)
        bars = pd.DataFrame({"date": dates, "open": values["open"] * later, "high": values["high"] * later,
                             "low": values["low"] * later, "close": close,
                             "volume": np.round(values["volume"] / later), "adj_factor": factor})
        # Yahoo pads sessions it has no trade for with all-null rows: those are not bars.
        bars = bars[~bars[["open", "high", "low", "close"]].isna().all(axis=1)]
        first, last = np.datetime64(start, "s"), np.datetime64(end, "s")
        bars = bars[(bars["date"] >= first) & (bars["date"] <= last)].reset_index(drop=True)
        if meta.get("currency"):
            bars["currency"] = str(meta["currency"]).upper()
        div_days, amounts = _dividends(events.get("dividends"), meta, zone, symbol)
        if not len(split_days) and not len(div_days):
            return bars, None
        amounts = amounts * _later_product(div_days, split_days, ratios)
        actions = actions_frame(["split"] * len(split_days) + ["dividend"] * len(div_days),
                                np.concatenate([split_days, div_days]),
                                np.concatenate([ratios, np.full(len(div_days), np.nan)]),
                                np.concatenate([np.full(len(split_days), np.nan), amounts]))
        return bars, actions


def _zone(exchange):
    if exchange in ZONES:
        return ZoneInfo(ZONES[exchange])
    return calendars.zone(exchange)


def _epoch(day, zone):
    """The UTC epoch second of `day`'s midnight in `zone`: a Sydney day starts 13:00 or 14:00 UTC before."""
    return int(dt.datetime.combine(day, dt.time(), tzinfo=zone).timestamp())


def _days(stamps, meta, fallback):
    """Each epoch second's calendar day in the exchange's zone, as datetime64[s] midnight."""
    instants = pd.to_datetime(stamps, unit="s", utc=True)
    name = meta.get("exchangeTimezoneName")
    try:
        local = instants.tz_convert(ZoneInfo(name)) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        local = None
    if local is None:
        offset = meta.get("gmtoffset")
        if isinstance(offset, (int, float)):
            local = instants + pd.Timedelta(seconds=offset)
        else:
            local = instants.tz_convert(fallback)
    return np.asarray(local.tz_localize(None).normalize() if local.tz is not None else local.normalize(),
                      dtype="datetime64[s]")


def _event_days(events, meta, zone, symbol, what):
    if not events:
        return np.array([], dtype="datetime64[s]"), []
    if not isinstance(events, dict):
        raise ProviderError(f"malformed answer from Yahoo for {symbol}: events.{what} is not an object")
    items = sorted(events.values(), key=lambda e: e.get("date", 0) if isinstance(e, dict) else 0)
    if not all(isinstance(e, dict) and isinstance(e.get("date"), (int, float)) for e in items):
        raise ProviderError(f"malformed answer from Yahoo for {symbol}: an event in events.{what} has no date")
    return _days(np.array([e["date"] for e in items], dtype="float64"), meta, zone), items


def _splits(events, meta, zone, symbol):
    days, items = _event_days(events, meta, zone, symbol, "splits")
    ratios = []
    for item in items:
        try:
            ratios.append(float(item["numerator"]) / float(item["denominator"]))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            raise ProviderError(f"malformed answer from Yahoo for {symbol}: split {item!r}") from None
    ratios = np.array(ratios, dtype="float64")
    if (ratios <= 0).any() or not np.isfinite(ratios).all():
        raise ProviderError(f"malformed answer from Yahoo for {symbol}: a split ratio is not positive")
    return days, ratios


def _dividends(events, meta, zone, symbol):
    days, items = _event_days(events, meta, zone, symbol, "dividends")
    return days, numbers([item.get("amount") for item in items], "dividends.amount", "Yahoo", symbol)


def _later_product(days, split_days, ratios):
    """For each day, the product of the ratios of the splits strictly after it (1.0 when none)."""
    if not len(split_days):
        return np.ones(len(days))
    # suffix[i] = product of ratios[i:]; a day before split i is adjusted by every split from i on.
    suffix = np.append(np.cumprod(ratios[::-1])[::-1], 1.0)
    return suffix[np.searchsorted(split_days, np.asarray(days, dtype="datetime64[s]"), side="right")]
