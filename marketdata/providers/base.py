"""The one interface every HTTP provider adapter implements, and the HTTP plumbing they share.

An adapter turns our own symbols (SymbolRequest: BHP on XASX) into its provider's spelling, asks for
daily bars in [start, end] and hands back FetchResult: bars in `sources.BAR_COLUMNS` form, corporate
actions, and one Outcome per requested symbol. One symbol failing never fails the batch: its outcome
says why and the others come back as usual. Retries (timeouts, 429, 5xx) are urllib3's Retry behind a
requests Session, which honours Retry-After; every wait goes through an injectable `sleep`.
"""
import json
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..models import CURRENCY_OF
from ..symbology import SymbolRequest  # noqa: F401  (part of the providers' interface)
from ..sources import BAR_COLUMNS

ACTION_COLUMNS = ["symbol", "exchange", "kind", "ex_date", "ratio", "amount"]
RETRY_STATUSES = (429, 500, 502, 503, 504)
# A Retry-After longer than this is cut to it: a run waits at most this long per attempt, and a
# provider that still refuses leaves the run rate limited with its retry time instead.
MAX_RETRY_AFTER = 60
BACKOFF_FACTOR = 0.5  # urllib3: no wait before the first retry, then 1 s, 2 s, 4 s ... (at most 30 s)
BACKOFF_MAX = 30
# Symbols in a row that could not reach the provider at all before the rest of a batch is not asked.
UNREACHABLE_AFTER = 3
USER_AGENT = "parakeet-marketdata/0.1 (+daily bars ingest)"


def sleep(seconds):
    """Wait between attempts; the one place a provider sleeps, so tests record waits instead."""
    time.sleep(seconds)


@dataclass(frozen=True)
class Outcome:
    """How one symbol's fetch ended: ok, no_data, error or rate_limited, with a message saying why.

    `retry_after` (seconds) is the provider's last Retry-After when it throttled us, if it sent one.
    """

    status: str
    message: str = ""
    retry_after: float | None = None


@dataclass
class FetchResult:
    """Bars (sources.BAR_COLUMNS), actions (ACTION_COLUMNS) and {(symbol, exchange): Outcome}."""

    bars: pd.DataFrame
    actions: pd.DataFrame
    outcomes: dict = field(default_factory=dict)


class ProviderError(Exception):
    """One symbol's fetch failed; the message says why in the provider's terms."""


class NoData(ProviderError):
    """The provider answered, but with no bars for the symbol in the window (never "delisted")."""


class RateLimited(ProviderError):
    """The provider still throttled us after the retries ran out."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class Unsupported(ProviderError):
    """The provider does not cover this kind of instrument or exchange."""


class _Retry(Retry):
    """urllib3's Retry with its two waits (Retry-After, backoff) made through an injectable function."""

    def __init__(self, *args, sleep_with=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.sleep_with = sleep_with or sleep

    def new(self, **kw):
        retry = super().new(**kw)
        retry.sleep_with = self.sleep_with
        return retry

    def sleep_for_retry(self, response):
        seconds = self.get_retry_after(response)
        if seconds:
            self.sleep_with(seconds)
            return True
        return False

    def _sleep_backoff(self):
        seconds = self.get_backoff_time()
        if seconds > 0:
            self.sleep_with(seconds)


class RateLimit:
    """At most `rate` requests per second, spaced evenly (0 = no limit); waits through `sleep`."""

    def __init__(self, rate, *, sleep_with, clock=time.monotonic):
        self.interval = 1.0 / rate if rate else 0.0
        self.sleep_with, self.clock = sleep_with, clock
        self.next_at = None

    def wait(self):
        if not self.interval:
            return
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            self.sleep_with(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


class Provider:
    """Base of the HTTP adapters: a retrying session, a rate limit and the per-symbol batch loop.

    Subclasses set `name` and `label` and implement `fetch_one(request, start, end) -> (bars, actions)`
    where bars has columns date (datetime64 midnight, the exchange's day), open, high, low, close,
    volume, adj_factor and optionally currency; they raise NoData, RateLimited, Unsupported or
    ProviderError with a message naming the problem.
    """

    name = ""
    label = ""

    def __init__(self, *, base_url, rate=0.0, retries=3, timeout=30.0, sleep_with=None, clock=time.monotonic,
                 session=None):
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.timeout = timeout
        # Late-bound, so a test that replaces base.sleep records the waits of providers made earlier.
        self.sleep_with = sleep_with or (lambda seconds: sleep(seconds))
        self.limit = RateLimit(rate, sleep_with=self.sleep_with, clock=clock)
        self.session = session or self._session()

    def _session(self):
        retry = _Retry(
            total=self.retries, connect=self.retries, read=self.retries, status=self.retries, other=0,
            status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
            backoff_factor=BACKOFF_FACTOR, backoff_max=BACKOFF_MAX, retry_after_max=MAX_RETRY_AFTER,
            respect_retry_after_header=True, raise_on_status=False, sleep_with=self.sleep_with,
        )
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=4)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        return session

    def provider_symbol(self, request):
        """The provider's spelling of our symbol (raises Unsupported when it does not list it)."""
        raise NotImplementedError

    def fetch_one(self, request, start, end):
        raise NotImplementedError

    def fetch(self, requests_, *, start, end):
        """Bars in [start, end] for each requested symbol; every symbol gets an Outcome, none raises.

        After UNREACHABLE_AFTER symbols in a row could not reach the provider at all (DNS, refused
        connection, timeout: each already retried), the rest are not asked: an outage costs seconds,
        not a retried request per symbol, and their outcome names the cause.
        """
        bars, actions, outcomes = [], [], {}
        unreachable = 0
        for request in requests_:
            request = SymbolRequest(request.symbol.strip().upper(), request.exchange.strip().upper(),
                                    request.asset_type)
            if unreachable >= UNREACHABLE_AFTER:
                outcomes[request.key] = Outcome("error", f"not asked: {self.label} unreachable "
                                                         f"({unreachable} symbols in a row failed: {cause})")
                continue
            try:
                got, acts = self.fetch_one(request, start, end)
                if not len(got):
                    raise NoData(f"no data in range {start}..{end}")
            except RateLimited as exc:
                outcomes[request.key] = Outcome("rate_limited", str(exc), exc.retry_after)
            except NoData as exc:
                outcomes[request.key] = Outcome("no_data", str(exc))
            except ProviderError as exc:
                outcomes[request.key] = Outcome("error", str(exc))
            except requests.RequestException as exc:
                outcomes[request.key] = Outcome("error", self._describe(exc))
                if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
                    unreachable += 1
                    cause = _root_cause(exc)
                    continue
            else:
                outcomes[request.key] = Outcome("ok", f"{len(got)} bars")
                bars.append(self._frame(request, got))
                if acts is not None and len(acts):
                    actions.append(acts.assign(symbol=request.symbol, exchange=request.exchange))
            unreachable = 0
        bars = pd.concat(bars, ignore_index=True) if bars else empty_bars()
        actions = (pd.concat(actions, ignore_index=True)[ACTION_COLUMNS] if actions else empty_actions())
        return FetchResult(bars=bars, actions=actions, outcomes=outcomes)

    def get(self, url, *, symbol, params=None, headers=None):
        """GET with the rate limit, retries and timeout; a response still failing raises ProviderError."""
        self.limit.wait()
        response = self.session.get(url, params=params, headers=headers, timeout=self.timeout)
        if response.status_code == 429:
            retry_after = _retry_after(response)
            raise RateLimited(f"{self.label} still answered 429 Too Many Requests for {symbol} after "
                              f"{self.retries} retries" + (f" (Retry-After {retry_after:g} s)" if retry_after else ""),
                              retry_after)
        if response.status_code >= 500:
            raise ProviderError(f"{self.label} answered HTTP {response.status_code} for {symbol} "
                                f"after {self.retries} retries")
        return response

    def json(self, response, symbol):
        try:
            return response.json()
        except (json.JSONDecodeError, ValueError) as exc:
            raise ProviderError(f"malformed JSON from {self.label} for {symbol}: {exc}") from None

    def _describe(self, exc):
        if isinstance(exc, (requests.Timeout, requests.exceptions.ConnectionError)) and "timed out" in str(exc).lower():
            return f"{self.label} timed out (after {self.retries} retries, {self.timeout:g} s each)"
        return f"{self.label} could not be reached ({_root_cause(exc)})"

    def _frame(self, request, got):
        n = len(got)
        currency = got["currency"] if "currency" in got else CURRENCY_OF.get(request.exchange, "")
        frame = pd.DataFrame({
            "symbol": np.full(n, request.symbol, dtype=object),
            "exchange": np.full(n, request.exchange, dtype=object),
            "currency": currency if isinstance(currency, pd.Series) else np.full(n, currency, dtype=object),
            "name": np.full(n, "", dtype=object),
            "date": np.asarray(got["date"], dtype="datetime64[s]"),
            **{c: got[c].to_numpy(dtype="float64", na_value=np.nan) for c in ("open", "high", "low", "close", "volume")},
            "adj_factor": got["adj_factor"].to_numpy(dtype="float64", na_value=np.nan),
        }, columns=BAR_COLUMNS)
        frame["adj_factor"] = frame["adj_factor"].fillna(1.0)
        return frame


def empty_bars():
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in ("symbol", "exchange", "currency", "name")})
    frame["date"] = pd.Series(dtype="datetime64[s]")
    for column in ("open", "high", "low", "close", "volume", "adj_factor"):
        frame[column] = pd.Series(dtype="float64")
    return frame[BAR_COLUMNS]


def empty_actions():
    return pd.DataFrame({"symbol": pd.Series(dtype=object), "exchange": pd.Series(dtype=object),
                         "kind": pd.Series(dtype=object), "ex_date": pd.Series(dtype="datetime64[s]"),
                         "ratio": pd.Series(dtype="float64"), "amount": pd.Series(dtype="float64")})


def actions_frame(kinds, dates, ratios, amounts):
    """An actions frame (without symbol/exchange, which fetch adds) from parallel lists."""
    return pd.DataFrame({"kind": pd.Series(kinds, dtype=object),
                         "ex_date": pd.Series(np.asarray(dates, dtype="datetime64[s]")),
                         "ratio": pd.Series(ratios, dtype="float64"), "amount": pd.Series(amounts, dtype="float64")})


def numbers(values, field, label, symbol):
    """A list of JSON numbers (None = missing) as float64, or ProviderError naming the field."""
    try:
        # The common case, plain JSON numbers and nulls, without a pandas object per field.
        return np.array([np.nan if v is None else v for v in values], dtype="float64")
    except (ValueError, TypeError):
        pass
    try:
        return pd.to_numeric(pd.Series(values, dtype=object), errors="raise").to_numpy(dtype="float64",
                                                                                       na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise ProviderError(f"malformed answer from {label} for {symbol}: field {field!r}: {exc}") from None


def _root_cause(exc):
    """The reason inside a requests error: "...: Failed to resolve 'query1.finance.yahoo.com' (...)"."""
    inner = exc.args[0] if exc.args else None
    return str(getattr(inner, "reason", None) or inner or exc)[:300]


def _retry_after(response):
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None
