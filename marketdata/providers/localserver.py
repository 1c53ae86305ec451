"""A real local HTTP server that answers like Tiingo, Yahoo and Stooq, from a DataFrame of real bars.

Tests and the daily benchmark point the providers at it (PROVIDER_URLS or base_url=server.url). It
speaks each provider's documented format on the same port, routed by path:

    /tiingo/daily/{ticker}/prices   /tiingo/daily/{ticker}   /v8/finance/chart/{symbol}   /q/d/l/?s=

and knows each series under the provider's own spelling (BHP on XASX is BHP.AX at Yahoo only; Tiingo
and Stooq serve US listings). Like Yahoo, its chart timestamps are the session's opening instant in
UTC and its prices and dividends are split-adjusted to the last bar it holds.

Misbehaviour is scripted per provider and provider symbol, one step per request, then `then` for the
rest: server.script("tiingo", "MSFT", "throttle:2", "throttle:2") answers 429 with Retry-After: 2
twice, then normally. Steps: ok, empty (the provider's own "no bars" answer), blank (200, empty body),
partial (all but the first bar of the window), malformed (a body that does not parse), throttle[:N]
(429, Retry-After N when given), error (500), unknown (the provider's unknown-symbol answer), slow:S
(answer after S seconds). Every request is logged in `server.hits`.
"""
import datetime as dt
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

US = ("XNYS", "XNAS", "ARCX", "BATS")
# Where each exchange's sessions open, in its own zone: Yahoo stamps a daily bar with that instant.
OPENS = {"XASX": ("Australia/Sydney", dt.time(10, 0)), "XNYS": ("America/New_York", dt.time(9, 30)),
         "XNAS": ("America/New_York", dt.time(9, 30)), "ARCX": ("America/New_York", dt.time(9, 30)),
         "BATS": ("America/New_York", dt.time(9, 30)), "FX": ("Europe/London", dt.time(0, 0))}
CURRENCIES = {"XASX": "AUD", "FX": "USD"}
TIINGO_EXCHANGES = {"XNYS": "NYSE", "XNAS": "NASDAQ", "ARCX": "NYSE ARCA", "BATS": "BATS"}


@dataclass(frozen=True)
class Hit:
    """One request the server answered: provider, the provider's symbol, query parameters, status."""

    provider: str
    symbol: str
    params: dict
    status: int


class _Series:
    """One series' arrays, sorted by date, with what Yahoo would serve precomputed."""

    def __init__(self, symbol, exchange, asset_type, name, frame):
        frame = frame.sort_values("date")
        self.symbol, self.exchange, self.asset_type, self.name = symbol, exchange, asset_type, name
        self.days = np.asarray(pd.to_datetime(frame["date"]), dtype="datetime64[D]")
        self.open, self.high, self.low, self.close = (frame[c].to_numpy(dtype="float64", na_value=np.nan)
                                                      for c in ("open", "high", "low", "close"))
        self.volume = (frame["volume"].to_numpy(dtype="float64", na_value=np.nan) if "volume" in frame
                       else np.full(len(frame), np.nan))
        self.adj_close = (frame["adjusted_close"].to_numpy(dtype="float64", na_value=np.nan)
                          if "adjusted_close" in frame else self.close.copy())
        self.dividend = (frame["dividend_amount"].to_numpy(dtype="float64", na_value=0.0)
                         if "dividend_amount" in frame else np.zeros(len(frame)))
        self.split = (frame["split_coefficient"].to_numpy(dtype="float64", na_value=1.0)
                      if "split_coefficient" in frame else np.ones(len(frame)))
        # Product of the split ratios strictly after each bar: Yahoo divides prices by it.
        after = np.append(self.split[1:], 1.0)
        self.later = np.cumprod(after[::-1])[::-1]
        zone, opens = OPENS.get(exchange, OPENS["XNYS"])
        self.zone = zone
        local = pd.DatetimeIndex(self.days.astype("datetime64[s]")) + pd.Timedelta(
            hours=opens.hour, minutes=opens.minute)
        self.stamps = (local.tz_localize(ZoneInfo(zone)).tz_convert("UTC").tz_localize(None)
                       .to_numpy(dtype="datetime64[s]").astype(np.int64))
        self.currency = CURRENCIES.get(exchange, "USD")

    def window(self, first, last):
        """Row slice of the bars dated in [first, last] (numpy datetime64[D])."""
        return slice(int(np.searchsorted(self.days, first, "left")), int(np.searchsorted(self.days, last, "right")))


def yahoo_symbol(symbol, exchange, asset_type):
    if asset_type == "fx" or exchange == "FX":
        return f"{symbol}=X"
    if asset_type == "index":
        return {"XAO": "^AORD"}.get(symbol, f"^A{symbol}") if exchange == "XASX" else f"^{symbol.lstrip('^')}"
    return symbol.replace(".", "-") + (".AX" if exchange == "XASX" else "")


class ProviderServer:
    """Serve `bars` (columns symbol or ticker, exchange, date, open, high, low, close, and optionally
    volume, adjusted_close, dividend_amount, split_coefficient, asset_type, name) on 127.0.0.1.

    Use as a context manager or call start()/stop(). `url` is the base URL for every provider.
    """

    def __init__(self, bars, *, token=None):
        bars = bars.rename(columns={"ticker": "symbol"})
        if "exchange" not in bars:
            bars = bars.assign(exchange="XNYS")
        if "asset_type" not in bars:
            bars = bars.assign(asset_type="equity")
        self.token = token
        self.series = {"tiingo": {}, "yahoo": {}, "stooq": {}}
        for (symbol, exchange, asset_type), frame in bars.groupby(["symbol", "exchange", "asset_type"], sort=False,
                                                                  observed=True):
            name = str(frame["name"].iat[0]) if "name" in frame else ""
            series = _Series(str(symbol), str(exchange), str(asset_type), name, frame)
            self.series["yahoo"][yahoo_symbol(series.symbol, series.exchange, series.asset_type)] = series
            if series.exchange in US and series.asset_type not in ("index", "fx"):
                self.series["tiingo"][series.symbol.replace(".", "-")] = series
                self.series["stooq"][series.symbol.lower().replace(".", "-") + ".us"] = series
            elif series.asset_type == "fx":
                self.series["stooq"][series.symbol.lower()] = series
        self.hits = []
        self._scripts = {}
        self._lock = threading.Lock()
        self._server = None

    # -- control ---------------------------------------------------------------------------------
    def start(self):
        handler = type("Handler", (_Handler,), {"provider_server": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="provider-server",
                         daemon=True).start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def urls(self):
        return {"tiingo": self.url, "yahoo": self.url, "stooq": self.url}

    def script(self, provider, symbol, *steps, then="ok"):
        """Answer the next requests for `symbol` (the provider's spelling) with `steps`, then `then`."""
        with self._lock:
            self._scripts[(provider, symbol)] = (deque(steps), then)

    def count(self, provider=None, symbol=None):
        with self._lock:
            return sum(1 for h in self.hits if provider in (None, h.provider) and symbol in (None, h.symbol))

    def symbols_asked(self, provider=None):
        with self._lock:
            return [h.symbol for h in self.hits if provider in (None, h.provider)]

    def _step(self, provider, symbol):
        with self._lock:
            steps, then = self._scripts.get((provider, symbol), (deque(), "ok"))
            return steps.popleft() if steps else then

    def _log(self, hit):
        with self._lock:
            self.hits.append(hit)

    # -- answers: each returns (status, content type, body bytes, extra headers) -----------------
    def answer(self, path, query, headers):
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["tiingo", "daily"] and len(parts) in (3, 4):
            provider, symbol = "tiingo", parts[2].upper()
            given = headers.get("Authorization") or ""
            if not given.startswith("Token ") or (self.token is not None and given != f"Token {self.token}"):
                return self._done(provider, symbol, params, 401, _json({"detail": "Please supply a token"}))
            kind = "prices" if len(parts) == 4 and parts[3] == "prices" else ("meta" if len(parts) == 3 else None)
            if kind is None:
                return self._done(provider, symbol, params, 404, _json({"detail": "Not found."}))
        elif parts[:3] == ["v8", "finance", "chart"] and len(parts) == 4:
            provider, symbol, kind = "yahoo", parts[3].upper(), "chart"
        elif parts[:3] == ["q", "d", "l"]:
            provider, symbol, kind = "stooq", params.get("s", "").lower(), "csv"
        else:
            return 404, "text/plain", b"Not Found", {}
        # Scripts shape the price answers; Tiingo's metadata is always answered as it stands.
        step = "ok" if kind == "meta" else self._step(provider, symbol)
        name, _, arg = step.partition(":")
        delay = {}
        if name == "slow":
            # Logged now, answered late: the handler sleeps before it writes (see do_GET).
            delay, name = {"_delay": arg or "1"}, "ok"
        if name == "throttle":
            extra = {"Retry-After": arg} if arg else {}
            body = _json({"detail": "Too many requests"}) if provider == "tiingo" else b"Too Many Requests\n"
            return self._done(provider, symbol, params, 429, body, extra=extra)
        if name == "error":
            return self._done(provider, symbol, params, 500, b"Internal Server Error\n", "text/plain")
        if name == "blank":
            return self._done(provider, symbol, params, 200, b"")
        series = self.series[provider].get(symbol)
        if name == "empty" and series is None:
            # A listing the provider knows but holds no bars for in the window (or at all).
            return self._done(provider, symbol, params, *self._empty(provider, symbol))
        if name == "unknown" or series is None:
            return self._done(provider, symbol, params, *self._unknown(provider, symbol))
        answer = {"prices": self._tiingo, "meta": self._tiingo_meta, "chart": self._yahoo, "csv": self._stooq}[kind]
        status, content_type, body, extra = self._done(provider, symbol, params, *answer(series, params, name))
        return status, content_type, body, {**extra, **delay}

    def _done(self, provider, symbol, params, status, body, content_type="application/json", extra=None):
        self._log(Hit(provider, symbol, params, status))
        return status, content_type, body, extra or {}

    def _unknown(self, provider, symbol):
        if provider == "tiingo":
            return 404, _json({"detail": f"Error: Ticker '{symbol}' not found"})
        if provider == "yahoo":
            return 404, _json({"chart": {"result": None, "error": {
                "code": "Not Found", "description": "No data found, symbol may be delisted"}}})
        return 200, b"No data", "text/plain"

    def _empty(self, provider, symbol):
        if provider == "tiingo":
            return 200, _json([])
        if provider == "yahoo":
            return 200, _json({"chart": {"result": [{"meta": {"symbol": symbol, "dataGranularity": "1d"},
                                                     "indicators": {"quote": [{}], "adjclose": [{}]}}], "error": None}})
        return 200, b"No data", "text/plain"

    def _rows(self, series, first, last, mode):
        rows = series.window(first, last)
        if mode == "empty":
            return slice(0, 0)
        if mode == "partial" and rows.stop > rows.start:
            return slice(rows.start + 1, rows.stop)
        return rows

    def _tiingo(self, series, params, mode):
        first = np.datetime64(params.get("startDate") or str(series.days[-1]), "D")
        last = np.datetime64(params.get("endDate") or str(series.days[-1]), "D")
        rows = self._rows(series, first, last, mode)
        k = series.adj_close[rows] / series.close[rows]
        out = []
        for i, day in enumerate(series.days[rows]):
            j = rows.start + i
            volume = None if np.isnan(series.volume[j]) else int(series.volume[j])
            out.append({
                "date": f"{day}T00:00:00.000Z", "close": _num(series.close[j]), "high": _num(series.high[j]),
                "low": _num(series.low[j]), "open": _num(series.open[j]), "volume": volume,
                "adjClose": _num(series.adj_close[j]), "adjHigh": _num(series.high[j] * k[i]),
                "adjLow": _num(series.low[j] * k[i]), "adjOpen": _num(series.open[j] * k[i]),
                "adjVolume": None if volume is None else int(round(volume * series.later[j])),
                "divCash": _num(series.dividend[j]), "splitFactor": _num(series.split[j]),
            })
        body = _json(out)
        return 200, body[: len(body) // 2] if mode == "malformed" else body

    def _tiingo_meta(self, series, params, mode):
        return 200, _json({"ticker": series.symbol.replace(".", "-").lower(), "name": series.name,
                           "exchangeCode": TIINGO_EXCHANGES.get(series.exchange, ""),
                           "startDate": str(series.days[0]), "endDate": str(series.days[-1]),
                           "description": ""})

    def _yahoo(self, series, params, mode):
        try:
            period1, period2 = int(params["period1"]), int(params["period2"])
        except (KeyError, ValueError):
            return 400, _json({"chart": {"result": None, "error": {
                "code": "Bad Request", "description": "period1 and period2 are required"}}})
        rows = slice(int(np.searchsorted(series.stamps, period1, "left")),
                     int(np.searchsorted(series.stamps, period2, "left")))
        if mode == "empty":
            rows = slice(0, 0)
        elif mode == "partial" and rows.stop > rows.start:
            rows = slice(rows.start + 1, rows.stop)
        last = series.stamps[-1] if len(series.stamps) else period2
        zone = ZoneInfo(series.zone)
        offset = int(dt.datetime.fromtimestamp(int(last), zone).utcoffset().total_seconds())
        meta = {"currency": series.currency, "symbol": yahoo_symbol(series.symbol, series.exchange, series.asset_type),
                "exchangeName": "ASX" if series.exchange == "XASX" else "NYQ",
                "instrumentType": {"index": "INDEX", "fx": "CURRENCY"}.get(series.asset_type, "EQUITY"),
                "gmtoffset": offset, "timezone": dt.datetime.fromtimestamp(int(last), zone).tzname(),
                "exchangeTimezoneName": series.zone, "dataGranularity": "1d", "range": ""}
        result = {"meta": meta}
        if rows.stop > rows.start:
            later = series.later[rows]
            result["timestamp"] = series.stamps[rows].tolist()
            events = {}
            dividends = {str(series.stamps[j]): {"amount": _num(series.dividend[j] / series.later[j]),
                                                 "date": int(series.stamps[j])}
                         for j in range(rows.start, rows.stop) if series.dividend[j] > 0}
            splits = {str(series.stamps[j]): {"date": int(series.stamps[j]), "numerator": _num(series.split[j]),
                                              "denominator": 1.0, "splitRatio": f"{series.split[j]:g}:1"}
                      for j in range(rows.start, rows.stop) if series.split[j] != 1.0}
            if dividends:
                events["dividends"] = dividends
            if splits:
                events["splits"] = splits
            if events:
                result["events"] = events
            result["indicators"] = {
                "quote": [{"open": _nums(series.open[rows] / later), "high": _nums(series.high[rows] / later),
                           "low": _nums(series.low[rows] / later), "close": _nums(series.close[rows] / later),
                           "volume": [None if np.isnan(v) else int(round(v)) for v in series.volume[rows] * later]}],
                "adjclose": [{"adjclose": _nums(series.adj_close[rows])}]}
        else:
            result["indicators"] = {"quote": [{}], "adjclose": [{}]}
        body = _json({"chart": {"result": [result], "error": None}})
        return 200, body[: len(body) // 2] if mode == "malformed" else body

    def _stooq(self, series, params, mode):
        def day(text, default):
            return np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:8]}", "D") if len(text) == 8 else default

        rows = self._rows(series, day(params.get("d1", ""), series.days[0]),
                          day(params.get("d2", ""), series.days[-1]), mode)
        if rows.stop <= rows.start:
            return 200, b"No data", "text/plain"
        lines = ["Date,Open,High,Low,Close,Volume"]
        for j in range(rows.start, rows.stop):
            volume = "" if np.isnan(series.volume[j]) else str(int(series.volume[j]))
            lines.append(f"{series.days[j]},{_csv(series.open[j])},{_csv(series.high[j])},{_csv(series.low[j])},"
                         f"{_csv(series.close[j])},{volume}")
        if mode == "malformed":
            lines[1] = lines[1].rsplit(",", 2)[0] + ",#VALUE!," + lines[1].rsplit(",", 1)[1]
        return 200, ("\r\n".join(lines) + "\r\n").encode(), "text/csv"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real providers
    # Headers and body go out in two writes; without TCP_NODELAY each answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    provider_server = None

    def do_GET(self):  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        status, content_type, body, extra = self.provider_server.answer(parts.path, parts.query, self.headers)
        delay = float(extra.pop("_delay", 0))
        if delay:
            time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a scripted slow answer): what a timeout test wants

    def log_message(self, format, *args):  # the hits list is the log
        pass


def _json(value):
    return json.dumps(value, separators=(",", ":")).encode()


def _num(value):
    value = float(value)
    return None if np.isnan(value) else round(value, 6)


def _nums(values):
    return [_num(v) for v in values]


def _csv(value):
    return "" if np.isnan(value) else repr(round(float(value), 6))
